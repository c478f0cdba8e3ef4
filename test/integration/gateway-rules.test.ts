/**
 * The rules inside a running gateway, through its real broker: receipts on the phone's command
 * topic, double scans, incidents, report by exception with minute aggregates and the local raw
 * store, and a config reload that keeps an open alarm.
 */
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Envelope } from '../../contracts/envelope.ts'
import { hashPassword } from '../../common/secrets.ts'
import type { Gateway } from '../../gateway/gateway.ts'
import { testOfficeConfig } from '../helpers/office.ts'
import { connectDevice, startGateway } from '../helpers/stack.ts'
import { waitFor } from '../helpers/wait.ts'

const rows = (gw: Gateway) => gw.outbox.peek(1_000_000).map((r) => JSON.parse(r.body) as Envelope)

describe('gateway rules', () => {
  let gateway: Gateway
  const clients: MqttClient[] = []
  const connect = async (id: string, extra = {}) => {
    const c = await connectDevice(gateway.mqtt.port!, id, extra)
    clients.push(c)
    return c
  }

  beforeAll(async () => {
    gateway = await startGateway({ overrides: { reduction: { deadband: { gas: 0.5 }, maxIntervalSeconds: 600 } } })
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)))
    await gateway.stop()
  })

  it('answers a scan with a receipt on cmd/{device}/receipt, and a double scan with a rejection, storing it once', async () => {
    const phone = await connect('phone-001')
    await phone.subscribeAsync('cmd/phone-001/#', { qos: 0 })
    const receipts: { status: string; reason?: string; checkpoint?: string }[] = []
    phone.on('message', (topic, payload) => {
      if (topic === 'cmd/phone-001/receipt') receipts.push(JSON.parse(payload.toString()) as never)
    })
    const ts = Date.now()
    await phone.publishAsync('dev/phone-001/scan', JSON.stringify({ ts, tag: '04A1B2C3D4E5F8', staff: 'staff-zhang-wei' }), { qos: 1 })
    await phone.publishAsync('dev/phone-001/scan', JSON.stringify({ ts: ts + 5000, tag: '04A1B2C3D4E5F8', staff: 'staff-zhang-wei' }), { qos: 1 })
    await waitFor(() => (receipts.length === 2 ? true : undefined), { what: 'two receipts' })
    expect(receipts[0]).toMatchObject({ status: 'accepted', checkpoint: 'cp-03' })
    expect(receipts[1]).toMatchObject({ status: 'rejected', reason: 'double scan' })
    expect(rows(gateway).filter((e) => e.kind === 'scan' && e.payload.tag === '04A1B2C3D4E5F8')).toHaveLength(1)
  })

  it('turns a problem report into an incident with its grid and handling level', async () => {
    const phone = await connect('phone-001')
    await phone.publishAsync(
      'dev/phone-001/report',
      JSON.stringify({ type: 'problem', category: 'road_damage', text: '井盖缺失 missing manhole cover', staff: 'staff-zhang-wei', photo: 'p/123.jpg' }),
      { qos: 1 },
    )
    const incident = rows(gateway).find((e) => e.kind === 'incident')
    expect(incident).toMatchObject({ grid: 'g-laojie-1', payload: { category: 'road_damage', reporter: 'staff-zhang-wei', photo: 'p/123.jpg', level: 'grid' } })
  })

  it('forwards readings by exception, keeps every one locally, and sends the minute aggregate', async () => {
    const gas = await connect('gas-002')
    // Two minutes ago, so the minute is over when the gateway's clock next ticks.
    const minute = Math.floor((Date.now() - 120_000) / 60_000) * 60_000
    const values = [3.0, 3.1, 2.9, 3.2, 3.05, 4.0, 3.9]
    for (const [i, value] of values.entries()) {
      await gas.publishAsync('dev/gas-002/reading', JSON.stringify({ ts: minute + i * 1000, quantity: 'gas', value }), { qos: 1 })
    }
    const forwarded = rows(gateway).filter((e) => e.kind === 'reading' && e.device === 'gas-002' && e.ts >= minute && e.ts < minute + 60_000)
    expect(forwarded.map((e) => (e.kind === 'reading' ? e.payload.value : NaN))).toEqual([3.0, 4.0])
    const aggregate = await waitFor(
      () => rows(gateway).find((e) => e.kind === 'aggregate' && e.device === 'gas-002' && e.ts === minute),
      { what: 'the minute aggregate' },
    )
    expect(aggregate.payload).toEqual({ quantity: 'gas', unit: '%LEL', from: minute, to: minute + 60_000, min: 2.9, max: 4.0, mean: 3.307143, count: 7 })
    const raw = (await (await fetch(`http://127.0.0.1:${gateway.httpPort}/v1/raw?device=gas-002&from=${minute}&to=${minute + 59_999}`)).json()) as { points: { value: number }[] }
    expect(raw.points.map((p) => p.value)).toEqual(values)
  })

  it('reloads a changed office config without losing an open alarm; a new device may connect at once', async () => {
    const gas = await connect('gas-002')
    await gas.publishAsync('dev/gas-002/reading', JSON.stringify({ quantity: 'gas', value: 33 }), { qos: 1 })
    const raised = rows(gateway).find((e) => e.kind === 'alert' && e.device === 'gas-002' && e.payload.state === 'raised')
    expect(raised).toBeDefined()

    const next = testOfficeConfig({ gateway: { dataDir: gateway.config.gateway.dataDir } })
    next.devices.push({ id: 'gas-003', type: 'gas-detector', secret: await hashPassword('demo-gas-003-secret') })
    gateway.reload({ ...next, broker: gateway.config.broker, http: gateway.config.http, uplink: gateway.config.uplink })
    await expect(connect('gas-003')).resolves.toBeDefined()

    await gas.publishAsync('dev/gas-002/reading', JSON.stringify({ quantity: 'gas', value: 2 }), { qos: 1 })
    const cleared = rows(gateway).find((e) => e.kind === 'alert' && e.device === 'gas-002' && e.payload.state === 'cleared')
    expect(cleared).toMatchObject({ payload: { alertId: raised!.id } })
  })

  it('a reload keeps the office id until a restart (it is in every envelope, and bound at the center)', async () => {
    const next = testOfficeConfig({ gateway: { dataDir: gateway.config.gateway.dataDir } })
    const before = gateway.config.office.id
    gateway.reload({ ...next, office: { ...next.office, id: 'another-office', name: 'Renamed' }, broker: gateway.config.broker, http: gateway.config.http, uplink: gateway.config.uplink })
    expect(gateway.config.office).toMatchObject({ id: before, name: 'Renamed' })
    const gas = await connect('gas-002')
    await gas.publishAsync('dev/gas-002/reading', JSON.stringify({ quantity: 'gas', value: 1.5 }), { qos: 1 })
    expect(rows(gateway).filter((e) => e.device === 'gas-002').every((e) => e.office === before)).toBe(true)
  })

  it('an SOS is committed as an alert of the urgent class, ahead of everything waiting', async () => {
    const phone = await connect('phone-001')
    await phone.publishAsync('dev/phone-001/report', JSON.stringify({ type: 'sos', staff: 'staff-zhang-wei', text: 'help' }), { qos: 1 })
    const queue = gateway.outbox.peek(1_000_000)
    const sos = queue.findIndex((r) => r.body.includes('"patrol.sos"'))
    expect(queue[sos].priority).toBe(0)
    expect(JSON.parse(queue[sos].body)).toMatchObject({ kind: 'alert', payload: { type: 'patrol.sos', severity: 'critical', level: 'street' } })
    // Everything that is not an alert, however much older, waits behind it.
    expect(sos).toBeLessThan(queue.findIndex((r) => r.priority > 0))
  })
})

// A gateway of its own: the minute under test must hold only this test's readings.
describe('gateway rules across a config reload', () => {
  let gateway: Gateway
  beforeAll(async () => {
    gateway = await startGateway({ overrides: { reduction: { deadband: { gas: 0.5 }, maxIntervalSeconds: 600 } } })
  })
  afterAll(async () => {
    await gateway.stop()
  })

  it('a reload keeps the minute being summarised: its aggregate still counts every reading', async () => {
    const gas = await connectDevice(gateway.mqtt.port!, 'gas-002')
    // This minute: the gateway's own clock does not close it during the test; the tick below does.
    const minute = Math.floor(Date.now() / 60_000) * 60_000
    const send = (value: number, i: number) => gas.publishAsync('dev/gas-002/reading', JSON.stringify({ ts: minute + i, quantity: 'gas', value }), { qos: 1 })
    await send(1.0, 0)
    await send(1.1, 1)
    const next = testOfficeConfig({ gateway: { dataDir: gateway.config.gateway.dataDir } })
    gateway.reload({ ...next, reduction: gateway.config.reduction, broker: gateway.config.broker, http: gateway.config.http, uplink: gateway.config.uplink })
    await send(1.2, 2)
    gateway.pipeline.tick(minute + 65_001)
    const aggregate = await waitFor(() => rows(gateway).find((e) => e.kind === 'aggregate' && e.device === 'gas-002' && e.ts === minute), { what: 'the minute aggregate' })
    expect(aggregate.payload).toMatchObject({ from: minute, min: 1.0, max: 1.2, count: 3 })
    expect(rows(gateway).filter((e) => e.kind === 'aggregate' && e.device === 'gas-002' && e.ts === minute)).toHaveLength(1)
    await gas.endAsync(true)
  })
})
