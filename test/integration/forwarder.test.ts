/**
 * The uplink forwarder against a scripted HTTP center (a real server on a free port): lanes,
 * the circuit breaker, Retry-After, pacing, partial answers. Delays are checked only from below:
 * the forwarder must not be faster than its policy; how much slower a busy machine makes it is
 * not this test's business.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import type { Envelope, EnvelopeDraft } from '../../contracts/envelope.ts'
import { silentLogger } from '../../common/logger.ts'
import { createGatewayMetrics } from '../../gateway/metrics.ts'
import { Outbox } from '../../gateway/outbox/outbox.ts'
import { Forwarder, type ForwarderOptions } from '../../gateway/uplink/forwarder.ts'
import { waitFor } from '../helpers/wait.ts'
import { removeTestDir } from '../helpers/temp.ts'

interface Received {
  at: number
  envelopes: Envelope[]
}
type Handler = (req: Received, res: ServerResponse) => void

const cleanup: (() => void | Promise<void>)[] = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

async function fakeCenter(handler: Handler): Promise<{ url: string; requests: Received[] }> {
  const requests: Received[] = []
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks)
      const text = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw).toString() : raw.toString()
      const body = JSON.parse(text) as { envelopes: Envelope[] }
      const r = { at: Date.now(), envelopes: body.envelopes }
      requests.push(r)
      handler(r, res)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())))
  cleanup.push(() => server.closeAllConnections())
  const address = server.address()
  return { url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`, requests }
}

function ok(res: ServerResponse, envelopes: Envelope[]) {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ results: envelopes.map((e) => ({ id: e.id, status: 'stored' })) }))
}

function forwarderTo(url: string, options: Partial<ForwarderOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'gridwatch-fwd-'))
  const outbox = new Outbox({ path: join(dir, 'outbox.db'), gatewayId: 'gw-1' })
  const fwd = new Forwarder({
    outbox,
    url,
    token: 'tok',
    batchMax: 500,
    lingerMs: 10,
    timeoutMs: 5000,
    maxEnvelopesPerSecond: 1_000_000,
    maxBackoffMs: 100,
    breakerFailures: 100,
    breakerHalfOpenMs: 100,
    metrics: createGatewayMetrics(),
    logger: silentLogger(),
    ...options,
  })
  fwd.start()
  cleanup.push(() => {
    outbox.close()
    removeTestDir(dir)
  })
  cleanup.push(() => fwd.stop())
  return { outbox, fwd }
}

const T = Date.UTC(2026, 10, 26)
const reading = (i: number): EnvelopeDraft => ({ gateway: 'gw-1', office: 'o', device: 'gas-1', ts: T + i, kind: 'reading', payload: { quantity: 'gas', value: i, unit: '%LEL' } })
const alert = (): EnvelopeDraft => ({ gateway: 'gw-1', office: 'o', device: 'phone-1', ts: T, kind: 'alert', payload: { alertId: 'gw-1:1', state: 'raised', type: 'patrol.sos', severity: 'critical', message: 'sos' } })

async function put(outbox: Outbox, fwd: Forwarder, drafts: EnvelopeDraft[]) {
  const envelopes = drafts.map((d) => outbox.stamp(d))
  await outbox.append(envelopes)
  fwd.wake(envelopes.some((e) => e.kind === 'alert'))
  return envelopes
}

describe('uplink forwarder', () => {
  it('sends an alert at once, while a telemetry batch is still waiting for its answer', async () => {
    const held: (() => void)[] = []
    const center = await fakeCenter((r, res) => {
      if (r.envelopes.some((e) => e.kind === 'alert')) ok(res, r.envelopes)
      else held.push(() => ok(res, r.envelopes))
    })
    const { outbox, fwd } = forwarderTo(center.url)
    await put(outbox, fwd, Array.from({ length: 10 }, (_, i) => reading(i)))
    await waitFor(() => (held.length === 1 ? true : undefined), { what: 'the telemetry batch to be in flight' })
    await put(outbox, fwd, [alert()])
    const alertRequest = await waitFor(() => center.requests.find((r) => r.envelopes.some((e) => e.kind === 'alert')), { what: 'the alert request' })
    expect(alertRequest.envelopes.map((e) => e.kind)).toEqual(['alert'])
    expect(held).toHaveLength(1)
    held[0]()
    await waitFor(() => (outbox.pendingCount() === 0 ? true : undefined), { what: 'the outbox to empty' })
  })

  it('keeps per-device order: one request in flight per lane, oldest first', async () => {
    const center = await fakeCenter((r, res) => ok(res, r.envelopes))
    const { outbox, fwd } = forwarderTo(center.url, { batchMax: 7 })
    await put(outbox, fwd, Array.from({ length: 50 }, (_, i) => reading(i)))
    await waitFor(() => (outbox.pendingCount() === 0 ? true : undefined))
    const values = center.requests.flatMap((r) => r.envelopes.map((e) => (e.kind === 'reading' ? e.payload.value : -1)))
    expect(values).toEqual(Array.from({ length: 50 }, (_, i) => i))
  })

  it('opens the circuit after repeated failures and probes once per half-open period', async () => {
    const center = await fakeCenter((_r, res) => {
      res.writeHead(503)
      res.end('down')
    })
    const { outbox, fwd } = forwarderTo(center.url, { breakerFailures: 3, breakerHalfOpenMs: 600, maxBackoffMs: 50 })
    await put(outbox, fwd, [reading(1)])
    await waitFor(() => (center.requests.length >= 5 ? true : undefined), { timeoutMs: 10_000, what: 'two probes after opening' })
    expect(fwd.status().circuit).not.toBe('closed')
    const gaps = center.requests.slice(3, 5).map((r, i) => r.at - center.requests[i + 2].at)
    // After the third failure the breaker is open: the next request waits the half-open period.
    expect(gaps[0]).toBeGreaterThanOrEqual(500)
    expect(gaps[1]).toBeGreaterThanOrEqual(500)
    expect(outbox.pendingCount()).toBe(1)
  })

  it('waits at least as long as Retry-After says', async () => {
    let calls = 0
    const center = await fakeCenter((r, res) => {
      if (calls++ === 0) {
        res.writeHead(429, { 'retry-after': '1' })
        res.end('slow down')
      } else ok(res, r.envelopes)
    })
    const { outbox, fwd } = forwarderTo(center.url)
    await put(outbox, fwd, [reading(1)])
    await waitFor(() => (outbox.pendingCount() === 0 ? true : undefined), { timeoutMs: 10_000 })
    expect(center.requests[1].at - center.requests[0].at).toBeGreaterThanOrEqual(950)
  })

  it('paces a backlog to maxEnvelopesPerSecond', async () => {
    const center = await fakeCenter((r, res) => ok(res, r.envelopes))
    const { outbox, fwd } = forwarderTo(center.url, { maxEnvelopesPerSecond: 2000 })
    await put(outbox, fwd, Array.from({ length: 3000 }, (_, i) => reading(i)))
    await waitFor(() => (outbox.pendingCount() === 0 ? true : undefined), { timeoutMs: 15_000 })
    const span = center.requests[center.requests.length - 1].at - center.requests[0].at
    // 3,000 envelopes at 2,000/s: the sixth batch of 500 may not start before 1.25 s.
    expect(span).toBeGreaterThanOrEqual(1200)
  })

  it('keeps what the center did not answer for, and sends it again', async () => {
    let first = true
    const center = await fakeCenter((r, res) => {
      if (first) {
        first = false
        ok(res, r.envelopes.slice(0, 3))
      } else ok(res, r.envelopes)
    })
    const { outbox, fwd } = forwarderTo(center.url)
    await put(outbox, fwd, Array.from({ length: 6 }, (_, i) => reading(i)))
    await waitFor(() => (outbox.pendingCount() === 0 ? true : undefined))
    expect(center.requests.map((r) => r.envelopes.length)).toEqual([6, 3])
  })

  it('treats Retry-After: 0 as a failure still: the lane backs off instead of retrying at once', async () => {
    const center = await fakeCenter((_r, res) => {
      res.writeHead(503, { 'retry-after': '0' })
      res.end('busy')
    })
    const { outbox, fwd } = forwarderTo(center.url, { maxBackoffMs: 400 })
    await put(outbox, fwd, [reading(1)])
    await waitFor(() => (center.requests.length >= 4 ? true : undefined), { timeoutMs: 10_000 })
    // Backoff from 200 ms (capped at 400): three gaps take at least ~300 ms, not a tight loop.
    expect(center.requests[3].at - center.requests[0].at).toBeGreaterThanOrEqual(250)
    expect(fwd.status().consecutiveFailures).toBeGreaterThanOrEqual(4)
  })

  it('keeps each request under maxBatchBytes, halves batches on a 413, and sets aside one envelope too large alone', async () => {
    // A center whose body limit is 5 kB, below this gateway's maxBatchBytes of 48 kB.
    const limit = 5 * 1024
    const accepted: number[] = []
    const center = await fakeCenter((r, res) => {
      const bytes = Buffer.byteLength(JSON.stringify({ envelopes: r.envelopes }))
      if (bytes > limit) {
        res.writeHead(413, { 'content-type': 'application/json' })
        res.end('{"code":"CLOUD_BODY_TOO_LARGE"}')
      } else {
        accepted.push(bytes)
        ok(res, r.envelopes)
      }
    })
    const { outbox, fwd } = forwarderTo(center.url, { maxBatchBytes: 48 * 1024, batchMax: 2000 })
    const report = (i: number, text: string): EnvelopeDraft => ({ gateway: 'gw-1', office: 'o', device: 'phone-1', ts: T + i, kind: 'report', payload: { type: 'problem', text } })
    // Reports of ~1.2 kB (UTF-8), one of ~6 kB that no request can carry, then more.
    const normal = [
      ...(await put(outbox, fwd, Array.from({ length: 40 }, (_, i) => report(i, `${i} ${'问'.repeat(380)}`)))),
      ...(await put(outbox, fwd, [report(99, '大'.repeat(1990))]).then(() => [])),
      ...(await put(outbox, fwd, Array.from({ length: 30 }, (_, i) => report(200 + i, `${i} ${'问'.repeat(380)}`)))),
    ]
    await waitFor(() => (outbox.pendingCount() === 0 ? true : undefined), { timeoutMs: 10_000 })
    const delivered = new Set(center.requests.filter((r) => Buffer.byteLength(JSON.stringify({ envelopes: r.envelopes })) <= limit).flatMap((r) => r.envelopes.map((e) => e.id)))
    expect(normal.every((e) => delivered.has(e.id))).toBe(true)
    expect(delivered.size).toBe(70)
    expect(outbox.deadLetterCount()).toBe(1)
    // Batches still carried several envelopes each once they fit: halved, not cut to one.
    expect(Math.max(...center.requests.filter((r) => r.envelopes.length > 1).map((r) => r.envelopes.length))).toBeGreaterThan(2)
    expect(accepted.every((b) => b <= limit)).toBe(true)
    // Having learnt the size, it stays under it: few refusals, not one for every success.
    const refused = center.requests.length - accepted.length
    expect(refused).toBeLessThanOrEqual(8)
  })

  it('a 4xx on one lane does not open the breaker the other lane needs', async () => {
    const center = await fakeCenter((r, res) => {
      if (r.envelopes.some((e) => e.kind === 'alert')) ok(res, r.envelopes)
      else {
        res.writeHead(403, { 'content-type': 'application/json' })
        res.end('{"code":"CLOUD_FORBIDDEN"}')
      }
    })
    const { outbox, fwd } = forwarderTo(center.url, { breakerFailures: 2, breakerHalfOpenMs: 60_000, maxBackoffMs: 20 })
    await put(outbox, fwd, [reading(1)])
    await waitFor(() => (center.requests.length >= 4 ? true : undefined), { timeoutMs: 10_000, what: 'repeated 403s' })
    expect(fwd.status().circuit).toBe('closed')
    const [sos] = await put(outbox, fwd, [alert()])
    await waitFor(() => (center.requests.some((r) => r.envelopes.some((e) => e.id === sos.id)) ? true : undefined), { timeoutMs: 2000, what: 'the alert through' })
  })

  it('keeps everything on 401 and reports why', async () => {
    const center = await fakeCenter((_r, res) => {
      res.writeHead(401)
      res.end('{"code":"CLOUD_UNAUTHENTICATED"}')
    })
    const { outbox, fwd } = forwarderTo(center.url)
    await put(outbox, fwd, [reading(1), reading(2)])
    await waitFor(() => (center.requests.length >= 2 ? true : undefined))
    expect(outbox.pendingCount()).toBe(2)
    expect(fwd.status()).toMatchObject({ up: false, lastError: expect.stringContaining('http_401') })
  })
})
