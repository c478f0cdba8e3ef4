/**
 * Gateway → cloud over real HTTP: delivery, the live alert path, outages and restarts, and a
 * poison envelope. The cloud runs on its embedded SQLite store here; the InfluxDB path is the
 * end-to-end suite's.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { Envelope } from '../../contracts/envelope.ts'
import { freePort } from '../../common/ports.ts'
import { readSse } from '../../common/sse.ts'
import type { Gateway } from '../../gateway/gateway.ts'
import { GATEWAY_VERSION } from '../../gateway/gateway.ts'
import { connectDevice, readJson, startCloud, startGateway, TEST_READER_TOKEN, type RunningCloud } from '../helpers/stack.ts'
import { waitFor } from '../helpers/wait.ts'
import { testTempDir } from '../helpers/temp.ts'

interface Series {
  points: { time: string; value: number; id: string }[]
}
interface Alerts {
  alerts: { id: string; type: string; severity: string; state: string; device: string; clearedAt?: string }[]
}

const teardown: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const fn of teardown.splice(0).reverse()) await fn()
})

async function cloudOn(port?: number): Promise<RunningCloud> {
  const cloud = await startCloud(port ? { port } : {})
  teardown.push(() => cloud.close())
  return cloud
}
async function gatewayTo(url: string, dataDir?: string): Promise<Gateway> {
  const gw = await startGateway({ uplinkUrl: url, ...(dataDir ? { dataDir } : {}) })
  teardown.push(() => gw.stop())
  return gw
}
async function device(gw: Gateway, id: string) {
  const c = await connectDevice(gw.mqtt.port!, id)
  teardown.push(() => c.endAsync(true))
  return c
}
const seriesOf = (cloud: RunningCloud, device: string, from: number) =>
  readJson<Series>(`${cloud.url}/v1/series?device=${device}&from=${from}&to=${Date.now() + 60_000}&limit=100000`)

describe('uplink', () => {
  it('delivers readings and alerts; an alert reaches the live stream without waiting for a batch', async () => {
    const cloud = await cloudOn()
    const gw = await gatewayTo(cloud.url)
    const alerts: Envelope[] = []
    const stream = readSse(`${cloud.url}/v1/stream?kinds=alert`, (e) => alerts.push(JSON.parse(e.data) as Envelope), {
      authorization: `Bearer ${TEST_READER_TOKEN}`,
    })
    teardown.push(async () => stream.close())
    await stream.opened

    const from = Date.now()
    const c = await device(gw, 'gas-001')
    for (const value of [4, 5, 27]) await c.publishAsync('dev/gas-001/reading', JSON.stringify({ ts: Date.now(), quantity: 'gas', value }), { qos: 1 })

    const alert = await waitFor(() => alerts.find((a) => a.kind === 'alert' && a.device === 'gas-001'), { what: 'alert on the live stream' })
    expect(alert).toMatchObject({ office: 'tangquan', payload: { state: 'raised', severity: 'major', type: 'sensor.threshold', value: 27 } })
    const series = await waitFor(async () => {
      const s = await seriesOf(cloud, 'gas-001', from)
      return s.points.length === 3 ? s : undefined
    }, { what: 'three readings in the cloud' })
    expect(series.points.map((p) => p.value)).toEqual([4, 5, 27])
    const listed = await readJson<Alerts>(`${cloud.url}/v1/alerts?office=tangquan`)
    expect(listed.alerts).toEqual([expect.objectContaining({ id: alert.id, device: 'gas-001', state: 'raised', severity: 'major' })])
    expect(listed.alerts[0].clearedAt).toBeUndefined()
    // The gateway reports itself with every batch; the center's health view shows it.
    const health = await readJson<{ gateways: { id: string; link: string; version?: string; backlog?: number }[] }>(`${cloud.url}/v1/gateways`)
    expect(health.gateways).toEqual([expect.objectContaining({ id: 'gw-tangquan-01', link: 'up', version: GATEWAY_VERSION, backlog: expect.any(Number) })])
  })

  it('holds everything through a cloud outage and delivers it exactly once, in order, when the cloud returns', async () => {
    const port = await freePort()
    const gw = await gatewayTo(`http://127.0.0.1:${port}`)
    const from = Date.now()
    const c = await device(gw, 'gas-002')
    for (let i = 0; i < 50; i++) await c.publishAsync('dev/gas-002/reading', JSON.stringify({ ts: from + i, quantity: 'gas', value: i }), { qos: 1 })
    await waitFor(() => (gw.forwarder.status().consecutiveFailures > 0 ? true : undefined), { what: 'the uplink to fail' })
    expect(gw.outbox.pendingCount()).toBeGreaterThanOrEqual(50)

    const cloud = await cloudOn(port)
    const series = await waitFor(async () => {
      const s = await seriesOf(cloud, 'gas-002', from)
      return s.points.length >= 50 && gw.outbox.pendingCount() === 0 ? s : undefined
    }, { timeoutMs: 20_000, what: 'the backlog to drain' })
    expect(series.points.map((p) => p.value)).toEqual(Array.from({ length: 50 }, (_, i) => i))
    expect(new Set(series.points.map((p) => p.id)).size).toBe(50)
  })

  it('a restarted gateway sends what it kept, and its new envelopes never reuse an id', async () => {
    const dataDir = testTempDir('gridwatch-restart-')
    const port = await freePort()
    const first = await startGateway({ uplinkUrl: `http://127.0.0.1:${port}`, dataDir })
    const from = Date.now()
    const c1 = await connectDevice(first.mqtt.port!, 'gas-001')
    for (let i = 0; i < 5; i++) await c1.publishAsync('dev/gas-001/reading', JSON.stringify({ ts: from + i, quantity: 'gas', value: i }), { qos: 1 })
    await c1.endAsync(true)
    await first.stop()

    const cloud = await cloudOn(port)
    const second = await gatewayTo(cloud.url, dataDir)
    const c2 = await device(second, 'gas-001')
    for (let i = 5; i < 10; i++) await c2.publishAsync('dev/gas-001/reading', JSON.stringify({ ts: from + i, quantity: 'gas', value: i }), { qos: 1 })
    const series = await waitFor(async () => {
      const s = await seriesOf(cloud, 'gas-001', from)
      return s.points.length >= 10 ? s : undefined
    }, { what: 'ten readings' })
    expect(series.points.map((p) => p.value)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    const seqs = series.points.map((p) => Number(p.id.split(':')[1]))
    expect(new Set(seqs).size).toBe(10)
    // The status(online) envelopes took sequence numbers too; every later one is larger.
    expect(seqs.slice(5).every((s) => s > Math.max(...seqs.slice(0, 5)))).toBe(true)
  })

  it('an envelope the cloud refuses goes to the dead-letter table and does not block the others', async () => {
    const cloud = await cloudOn()
    const gw = await gatewayTo(cloud.url)
    const from = Date.now()
    const draft = (value: number) =>
      gw.outbox.stamp({ gateway: 'gw-tangquan-01', office: 'tangquan', device: 'gas-002', ts: from, kind: 'reading', payload: { quantity: 'gas', value, unit: '%LEL' } })
    // NaN serialises as null, which the cloud refuses: the shape of a bug, not of bad luck.
    await gw.outbox.append([draft(1), draft(Number.NaN), draft(3)])
    await waitFor(() => (gw.outbox.pendingCount() === 0 ? true : undefined), { what: 'the outbox to empty' })
    expect(gw.outbox.deadLetterCount()).toBe(1)
    const series = await seriesOf(cloud, 'gas-002', from)
    expect(series.points.map((p) => p.value)).toEqual([1, 3])
  })
})
