import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { EnvelopeDraft, GapEnvelope } from '../../contracts/envelope.ts'
import { envelopeProblems } from '../../contracts/validate.ts'
import { silentLogger } from '../../common/logger.ts'
import { Evictor, type Evicted, type EvictionPolicy } from '../../gateway/outbox/eviction.ts'
import { Outbox, Priority } from '../../gateway/outbox/outbox.ts'
import { removeTestDir } from '../helpers/temp.ts'

const dirs: string[] = []
const boxes: Outbox[] = []
afterEach(() => {
  for (const b of boxes.splice(0)) b.close()
  for (const d of dirs.splice(0)) removeTestDir(d)
})

function setup(policy: Partial<EvictionPolicy>, path?: string) {
  const dir = mkdtempSync(join(tmpdir(), 'gridwatch-evict-'))
  dirs.push(dir)
  const box = new Outbox({ path: path ?? join(dir, 'outbox.db'), gatewayId: 'gw-1' })
  boxes.push(box)
  const events: Evicted[] = []
  const evictor = new Evictor(
    box,
    { quotaBytes: 0, lowWater: 0.9, ttlMs: { event: 0, aggregate: 0, telemetry: 0 }, ...policy },
    'office-1',
    silentLogger(),
    (e) => events.push(e),
  )
  return { box, evictor, events }
}

const T = Date.UTC(2026, 10, 26)
const base = { gateway: 'gw-1', office: 'office-1' } as const
const reading = (device: string, i: number): EnvelopeDraft => ({ ...base, device, ts: T + i, kind: 'reading', payload: { quantity: 'gas', value: i, unit: '%LEL' } })
const scan = (i: number): EnvelopeDraft => ({ ...base, device: 'phone-1', ts: T + i, kind: 'scan', payload: { tag: `T${i}`, checkpoint: 'cp-1', method: 'nfc' } })
const alert = (i: number): EnvelopeDraft => ({ ...base, device: 'gas-1', ts: T + i, kind: 'alert', payload: { alertId: `gw-1:${i}`, state: 'raised', type: 'patrol.sos', severity: 'critical', message: 'x'.repeat(200) } })

async function fill(box: Outbox, drafts: EnvelopeDraft[]) {
  for (let i = 0; i < drafts.length; i += 500) await box.append(drafts.slice(i, i + 500).map((d) => box.stamp(d)))
}
const kinds = (box: Outbox) => {
  const counts: Record<string, number> = {}
  for (const r of box.peek(1_000_000)) {
    const kind = (JSON.parse(r.body) as { kind: string }).kind
    counts[kind] = (counts[kind] ?? 0) + 1
  }
  return counts
}
const gapsIn = (box: Outbox) => box.peek(1_000_000).map((r) => JSON.parse(r.body) as GapEnvelope).filter((e) => e.kind === 'gap')

const aggregate = (i: number): EnvelopeDraft => ({
  ...base,
  device: 'gas-1',
  ts: T + i,
  kind: 'aggregate',
  payload: { quantity: 'gas', unit: '%LEL', from: T + i, to: T + i + 60_000, min: 1, max: 2, mean: 1.5, count: 12 },
})

describe('telemetry aggregates', () => {
  it('are their own class: counted as such, evicted before any scan, and kept for their own TTL', async () => {
    const { box, evictor, events } = setup({ quotaBytes: 400 * 1024, ttlMs: { event: 0, aggregate: 60_000, telemetry: 0 } })
    await fill(box, [...Array.from({ length: 300 }, (_, i) => scan(i)), ...Array.from({ length: 3000 }, (_, i) => aggregate(i))])
    expect(box.stats().pending).toMatchObject({ event: 300, aggregate: 3000 })
    // Scans go out before older-numbered aggregates would: class first, then sequence.
    expect((JSON.parse(box.peek(1)[0].body) as { kind: string }).kind).toBe('scan')
    expect(evictor.enforceQuota()).toBeGreaterThan(0)
    expect(kinds(box).scan).toBe(300)
    expect(events.every((e) => e.class === 'aggregate')).toBe(true)
    // Their TTL, not the events' (which is off here): every aggregate left goes, no scan.
    const left = kinds(box).aggregate
    expect(left).toBeGreaterThan(0)
    expect(evictor.expire(Date.now() + 61_000)).toBe(left)
    expect(kinds(box)).toMatchObject({ scan: 300 })
    expect(kinds(box).aggregate).toBeUndefined()
  })

  it('waiting in an outbox from before they had their class are moved into it at open', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gridwatch-evict-'))
    dirs.push(dir)
    const path = join(dir, 'outbox.db')
    const first = new Outbox({ path, gatewayId: 'gw-1' })
    await first.append([first.stamp(aggregate(1)), first.stamp(scan(2))])
    // As an older version left it: aggregates in the event class, and no mark of the move.
    first.db.prepare("UPDATE outbox SET priority = 1 WHERE kind = 'aggregate'").run()
    first.db.prepare("DELETE FROM meta WHERE key = 'aggregates_classed'").run()
    first.close()
    const again = new Outbox({ path, gatewayId: 'gw-1' })
    boxes.push(again)
    expect(again.stats().pending).toMatchObject({ event: 1, aggregate: 1 })
  })
})

describe('gap records under a lasting full quota', () => {
  it('are widened while unsent, one per device, so the quota holds with many devices and scans are kept', async () => {
    const { box, evictor } = setup({ quotaBytes: 1024 * 1024 })
    const devices = 400
    let i = 0
    let evicted = 0
    for (let round = 0; round < 30; round++) {
      // A second of a district's worth of sensors, interleaved, and a patrol scan.
      await fill(box, [...Array.from({ length: devices }, (_, d) => reading(`gas-${d}`, i++)), scan(i++)])
      evicted += evictor.enforceQuota()
    }
    expect(evicted).toBeGreaterThan(0)
    expect(box.usedBytes()).toBeLessThanOrEqual(1024 * 1024)
    const gaps = gapsIn(box)
    // One per device that lost data, each counting everything it lost.
    expect(gaps.length).toBeLessThanOrEqual(devices)
    expect(new Set(gaps.map((g) => g.device)).size).toBe(gaps.length)
    expect(gaps.reduce((n, g) => n + g.payload.count, 0)).toBe(evicted)
    for (const g of gaps) expect(envelopeProblems(g)).toEqual([])
    expect(kinds(box).scan).toBe(30)
  })

  it('never rewrites a gap record once it has been leased for sending: a new one follows it', async () => {
    const { box, evictor } = setup({ quotaBytes: 256 * 1024 })
    await fill(box, Array.from({ length: 3000 }, (_, i) => reading('gas-1', i)))
    evictor.enforceQuota()
    const [first] = gapsIn(box)
    const sent = box.lease(1, Priority.event, Priority.event)
    expect(sent.map((r) => r.seq)).toEqual([first.seq])
    await fill(box, Array.from({ length: 3000 }, (_, i) => reading('gas-1', 3000 + i)))
    evictor.enforceQuota()
    const gaps = gapsIn(box)
    expect(gaps.length).toBe(2)
    expect(gaps[0]).toEqual(first)
    expect(gaps[1].payload.from).toBeGreaterThan(first.payload.to)
  })
})

describe('outbox quota', () => {
  it('evicts telemetry first and keeps every alert and scan, leaving a valid gap record per device', async () => {
    const { box, evictor, events } = setup({ quotaBytes: 600 * 1024 })
    await fill(box, [
      ...Array.from({ length: 200 }, (_, i) => alert(i)),
      ...Array.from({ length: 200 }, (_, i) => scan(i)),
      ...Array.from({ length: 3000 }, (_, i) => reading(i % 2 ? 'gas-1' : 'gas-2', i)),
    ])
    expect(box.usedBytes()).toBeGreaterThan(600 * 1024)

    const evicted = evictor.enforceQuota()
    expect(evicted).toBeGreaterThan(0)
    expect(box.usedBytes()).toBeLessThanOrEqual(600 * 1024)
    const left = kinds(box)
    expect(left.alert).toBe(200)
    expect(left.scan).toBe(200)
    expect(left.reading ?? 0).toBe(3000 - evicted)
    expect(events.every((e) => e.class === 'telemetry' && e.reason === 'quota')).toBe(true)

    const gaps = gapsIn(box)
    expect(new Set(gaps.map((g) => g.device))).toEqual(new Set(['gas-1', 'gas-2']))
    expect(gaps.reduce((n, g) => n + g.payload.count, 0)).toBe(evicted)
    for (const g of gaps) {
      expect(envelopeProblems(g)).toEqual([])
      expect(g.payload).toMatchObject({ class: 'telemetry', reason: 'quota', kinds: ['reading'] })
      // The oldest readings go first.
      expect(g.payload.from).toBeLessThan(T + 20)
    }
  })

  it('evicts events only when no telemetry is left, and never alerts', async () => {
    const { box, evictor } = setup({ quotaBytes: 200 * 1024 })
    await fill(box, [...Array.from({ length: 50 }, (_, i) => alert(i)), ...Array.from({ length: 1500 }, (_, i) => scan(i)), ...Array.from({ length: 100 }, (_, i) => reading('gas-1', i))])
    evictor.enforceQuota()
    const left = kinds(box)
    expect(left.reading ?? 0).toBe(0)
    expect(left.scan).toBeLessThan(1500)
    expect(left.scan).toBeGreaterThan(0)
    expect(left.alert).toBe(50)
    expect(gapsIn(box).some((g) => g.payload.class === 'event' && g.payload.kinds.includes('scan'))).toBe(true)
  })

  it('leaves rows leased to a request in flight alone', async () => {
    const { box, evictor } = setup({ quotaBytes: 100 * 1024 })
    await fill(box, Array.from({ length: 2000 }, (_, i) => reading('gas-1', i)))
    const inFlight = box.lease(100, 3, 3).map((r) => r.seq)
    const evicted = evictor.enforceQuota()
    const present = new Set(box.peek(1_000_000).map((r) => r.seq))
    expect(inFlight.every((s) => present.has(s))).toBe(true)
    // The leased rows are the oldest, so the evicted ones lie beyond them: every row that went is
    // in a gap record, and no leased row is counted there.
    expect(evicted).toBeGreaterThan(0)
    expect(kinds(box).reading).toBe(2000 - evicted)
    expect(gapsIn(box).reduce((n, g) => n + g.payload.count, 0)).toBe(evicted)
    expect(box.stats().pending.telemetry).toBe(2000 - evicted)
  })

  it('skips leased rows in the middle of a chunk and counts exactly the rows it deletes', async () => {
    const { box, evictor } = setup({ quotaBytes: 100 * 1024 })
    await fill(box, Array.from({ length: 2000 }, (_, i) => reading(i % 3 ? 'gas-1' : 'gas-2', i)))
    const all = box.peek(1_000_000).map((r) => r.seq)
    // Leased rows spread through the oldest part of the class: every tenth of the first 200.
    const taken = box.lease(200, 3, 3).map((r) => r.seq)
    const inFlight = taken.filter((_, i) => i % 10 === 9)
    box.release(taken.filter((_, i) => i % 10 !== 9))
    const evicted = evictor.enforceQuota()
    expect(evicted).toBeGreaterThan(200)
    const left = box.peek(1_000_000).map((r) => ({ seq: r.seq, kind: (JSON.parse(r.body) as { kind: string }).kind }))
    const seqs = new Set(left.map((r) => r.seq))
    expect(inFlight.every((s) => seqs.has(s))).toBe(true)
    const readingsLeft = left.filter((r) => r.kind === 'reading')
    expect(readingsLeft.length).toBe(2000 - evicted)
    const gaps = gapsIn(box)
    expect(gaps.reduce((n, g) => n + g.payload.count, 0)).toBe(evicted)
    expect(new Set(gaps.map((g) => g.device))).toEqual(new Set(['gas-1', 'gas-2']))
    // Apart from the leased rows, what is left of the class is its newest rows: oldest first.
    const unleasedLeft = readingsLeft.filter((r) => !inFlight.includes(r.seq)).map((r) => r.seq)
    expect(unleasedLeft).toEqual(all.slice(all.length - unleasedLeft.length))
  })

  it('hands free pages back once the outbox has drained, not while it is full', async () => {
    const quotaBytes = 2 * 1024 * 1024
    const { box, evictor } = setup({ quotaBytes })
    // Fill to just over the quota, as steady ingest against an unreachable center does.
    for (let i = 0; box.usedBytes() <= quotaBytes; i += 200) await fill(box, Array.from({ length: 200 }, (_, j) => reading('gas-1', i + j)))
    expect(evictor.enforceQuota()).toBeGreaterThan(0)
    // The pages eviction freed are kept for the rows that come next.
    expect(evictor.releasePages()).toBe(0)
    box.ack(box.peek(1_000_000).map((r) => r.seq))
    const before = box.pageStats()
    expect(before.free).toBeGreaterThan(quotaBytes / 2)
    const released = evictor.releasePages()
    expect(released).toBeGreaterThan(0)
    const after = box.pageStats()
    expect(after.total).toBe(before.total - released * before.pageSize)
    // Down to the spare room (a tenth of the quota), never below it, and then no further.
    expect(after.free).toBeGreaterThanOrEqual(quotaBytes * 0.1 - before.pageSize)
    expect(evictor.releasePages()).toBe(0)
  })

  it('keeps sequence numbers monotonic across evictions and restarts (gap records take numbers too)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gridwatch-evict-'))
    dirs.push(dir)
    const path = join(dir, 'outbox.db')
    const { box, evictor } = setup({ quotaBytes: 64 * 1024 }, path)
    await fill(box, Array.from({ length: 1000 }, (_, i) => reading('gas-1', i)))
    evictor.enforceQuota()
    const highest = Math.max(...box.peek(1_000_000).map((r) => r.seq))
    box.ack(box.peek(1_000_000).map((r) => r.seq))
    box.close()
    boxes.splice(0)
    const reopened = new Outbox({ path, gatewayId: 'gw-1' })
    boxes.push(reopened)
    expect(reopened.stamp(reading('gas-1', 0)).seq).toBe(highest + 1)
  })
})

describe('outbox TTL', () => {
  it('expires telemetry older than its TTL with a ttl gap record, and keeps fresh rows and alerts', async () => {
    const { box, evictor, events } = setup({ ttlMs: { event: 0, aggregate: 0, telemetry: 60_000 } })
    await fill(box, [alert(1), ...Array.from({ length: 10 }, (_, i) => reading('gas-1', i))])
    expect(evictor.expire(Date.now() + 30_000)).toBe(0)
    expect(evictor.expire(Date.now() + 120_000)).toBe(10)
    expect(events).toEqual([{ class: 'telemetry', reason: 'ttl', rows: 10, gaps: 1 }])
    expect(kinds(box)).toEqual({ alert: 1, gap: 1 })
    expect(gapsIn(box)[0].payload).toMatchObject({ reason: 'ttl', count: 10, from: T, to: T + 9 })
  })
})
