/**
 * The Modbus RTU input against simulated slaves over a real pseudo-terminal pair (socat): a real
 * gateway polls them through modbus-serial, and what it committed is read back from the outbox
 * file. Each failure kind has a slave of its own so the counters of one test cannot feed another.
 */
import Database from 'better-sqlite3'
import type { Counter } from 'prom-client'
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import { GasDetectorSlave, SlaveLine, type ServedRequest } from '../../devices/modbus/gas-detector-slave.ts'
import { Gateway } from '../../gateway/gateway.ts'
import { describeWith } from '../helpers/binaries.ts'
import { capturingLogger } from '../helpers/stack.ts'
import { testModbusBus, testOfficeConfig } from '../helpers/office.ts'
import { SOCAT, startPtyPair, type PtyPair } from '../helpers/pty.ts'
import { nextEvent, waitFor } from '../helpers/wait.ts'

const BUS = 'rs485-1'
/** unit → device: 1 readings, alarm and fault; 2 timeouts and offline; 3 exceptions; 4 CRC errors; 5 late answers. */
const UNITS = { 1: 'gas-101', 2: 'gas-102', 3: 'gas-103', 4: 'gas-104', 5: 'gas-105' } as const
type Unit = keyof typeof UNITS

const gasMap = {
  points: [
    { quantity: 'gas', unit: '%LEL', function: 'input', address: 0, type: 'uint16', scale: 0.1 },
    { quantity: 'temperature', unit: '°C', function: 'holding', address: 16, type: 'float32', wordOrder: 'big' },
  ],
  bits: [
    { name: 'sensor_fault', function: 'input', address: 1, mask: 0x0001, fault: true },
    { name: 'alarm_relay', function: 'input', address: 1, mask: 0x0004 },
  ],
}

interface Committed {
  seq: number
  device: string
  kind: string
  payload: Record<string, unknown>
}

describeWith([SOCAT])('modbus input', () => {
  let pair: PtyPair
  let line: SlaveLine
  let gateway: Gateway
  let db: Database.Database
  const { logger, lines } = capturingLogger('gateway')
  const slaves = new Map<Unit, GasDetectorSlave>(
    (Object.keys(UNITS) as unknown as Unit[]).map((u) => [Number(u) as Unit, new GasDetectorSlave(Number(u), { gas: 3, temperature: 20 })]),
  )
  const slave = (u: Unit) => slaves.get(u)!
  const served: (ServedRequest & { at: number })[] = []

  const openLine = async () => {
    line = await SlaveLine.open(pair.slaves, [...slaves.values()])
    line.on('request', (r) => served.push({ ...r, at: Date.now() }))
  }
  /** The next request a slave saw (after the call), with what it answered. */
  const nextRequest = (unit: Unit, reply?: ServedRequest['reply']) =>
    nextEvent<ServedRequest>(
      (l) => {
        line.on('request', l)
        return () => line.off('request', l)
      },
      (r) => r.unit === unit && (reply === undefined || r.reply === reply),
    )

  const committed = (device: string, kind: string): Committed[] =>
    (db.prepare('SELECT seq, body FROM outbox WHERE device = ? AND kind = ? ORDER BY seq').all(device, kind) as { seq: number; body: string }[]).map((r) => ({
      seq: r.seq,
      ...(JSON.parse(r.body) as Omit<Committed, 'seq'>),
    }))
  const statesOf = (device: string) => committed(device, 'status').map((e) => e.payload.state)
  const counter = async (name: string, labels: Record<string, string>) => {
    const metric = gateway.metrics.registry.getSingleMetric(name) as Counter | undefined
    if (!metric) return 0
    const { values } = await metric.get()
    return values.find((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))?.value ?? 0
  }
  const gauge = async (unit: Unit, bit: string) => {
    const metric = gateway.metrics.registry.getSingleMetric('gateway_modbus_status_bit') as Counter | undefined
    const values = metric ? (await metric.get()).values : []
    return values.find((v) => v.labels.bus === BUS && v.labels.slave === String(unit) && v.labels.bit === bit)?.value
  }
  const errors = (unit: Unit, reason: string) => counter('gateway_modbus_errors_total', { bus: BUS, slave: String(unit), reason })
  const rejected = (unit: Unit, reason: string) => counter('gateway_input_rejected_total', { input: 'modbus', source: `${BUS}/${unit}`, reason })
  const health = async () => {
    const res = await fetch(`http://127.0.0.1:${gateway.httpPort}/healthz`)
    return ((await res.json()) as { inputs: Record<string, { ok: boolean; detail?: string }> }).inputs[`modbus:${BUS}`]
  }

  beforeAll(async () => {
    pair = await startPtyPair()
    await openLine()
    const base = testOfficeConfig()
    const config = testOfficeConfig({
      devices: [
        ...base.devices,
        ...Object.values(UNITS).map((id) => ({ id, type: 'gas-detector', enterprise: 'ent-laojie-canteen', via: 'modbus' })),
      ],
      reduction: { deadband: { gas: 0, temperature: 0 } },
      inputs: {
        modbus: [testModbusBus(BUS, pair.master, Object.entries(UNITS).map(([unit, device]) => ({ unit: Number(unit), device, intervalMs: 100, ...gasMap })))],
      },
    })
    gateway = await Gateway.start(config, { logger, processMetrics: false })
    db = new Database(gateway.outbox.path, { readonly: true })
  })
  afterEach(() => {
    for (const s of slaves.values()) s.behaviour = { mode: 'answer' }
  })
  afterAll(async () => {
    db?.close()
    await gateway?.stop()
    await line?.close()
    await pair?.kill()
  })

  it('commits scaled readings, in the unit the register map gives, and reports the slave online', async () => {
    slave(1).setGas(12.3)
    slave(1).setTemperature(21.5)
    const gas = await waitFor(() => committed('gas-101', 'reading').find((e) => e.payload.quantity === 'gas' && e.payload.value === 12.3), { what: 'a 12.3 %LEL reading' })
    expect(gas.payload).toEqual({ quantity: 'gas', value: 12.3, unit: '%LEL' })
    const temperature = await waitFor(() => committed('gas-101', 'reading').find((e) => e.payload.quantity === 'temperature'), { what: 'a temperature reading' })
    expect(temperature.payload).toEqual({ quantity: 'temperature', value: 21.5, unit: '°C' })
    expect(statesOf('gas-101')[0]).toBe('online')
  })

  it('reads contiguous registers in one request: gas and status together (FC04), the two words of the temperature (FC03)', async () => {
    await nextRequest(1)
    const shapes = new Set(served.filter((r) => r.unit === 1).map((r) => `${r.functionCode}:${r.start}:${r.count}`))
    expect([...shapes].sort()).toEqual(['3:16:2', '4:0:2'])
  })

  it('raises a critical sensor.threshold alarm for gas over the high level (50 %LEL)', async () => {
    slave(1).setGas(61)
    const alarm = await waitFor(
      () => committed('gas-101', 'alert').find((e) => e.payload.type === 'sensor.threshold' && e.payload.state === 'raised'),
      { what: 'a gas alarm' },
    )
    expect(alarm.payload).toMatchObject({ severity: 'critical', value: 61, quantity: 'gas' })
    // The detector's own relay bit is shown, not turned into a second alarm.
    await waitFor(async () => ((await gauge(1, 'alarm_relay')) === 1 ? true : undefined), { what: 'alarm_relay bit 1' })
    expect(await gauge(1, 'sensor_fault')).toBe(0)
    slave(1).setGas(3)
    await waitFor(() => committed('gas-101', 'alert').find((e) => e.payload.type === 'sensor.threshold' && e.payload.state === 'cleared'), {
      what: 'the alarm cleared',
    })
  })

  it('reports a fault bit as status fault (sensor.fault), and online when it clears', async () => {
    slave(1).setFault(true)
    const fault = await waitFor(() => committed('gas-101', 'status').find((e) => e.payload.state === 'fault'), { what: 'status fault' })
    expect(fault.payload).toEqual({ state: 'fault', reason: 'sensor_fault' })
    await waitFor(() => committed('gas-101', 'alert').find((e) => e.payload.type === 'sensor.fault' && e.payload.state === 'raised'), { what: 'sensor.fault' })
    slave(1).setFault(false)
    await waitFor(() => committed('gas-101', 'alert').find((e) => e.payload.type === 'sensor.fault' && e.payload.state === 'cleared'), {
      what: 'sensor.fault cleared',
    })
    expect(statesOf('gas-101')).toEqual(['online', 'fault', 'online'])
  })

  it('counts timeouts per slave, reports a silent slave offline once, and online when it answers again', async () => {
    await waitFor(() => (statesOf('gas-102').length > 0 ? true : undefined), { what: 'gas-102 online' })
    const before = await errors(2, 'timeout')
    slave(2).behaviour = { mode: 'silent' }
    await waitFor(() => (statesOf('gas-102').includes('offline') ? true : undefined), { what: 'gas-102 offline' })
    expect((await health()).detail).toContain('gas-102')
    // Keep it silent for several more polls: still one offline event.
    for (let i = 0; i < 4; i++) await nextRequest(2, 'silent')
    expect(await errors(2, 'timeout')).toBeGreaterThanOrEqual(before + 5)
    expect(await rejected(2, 'timeout')).toBeGreaterThanOrEqual(5)
    expect(await errors(1, 'timeout')).toBe(0)
    const offline = committed('gas-102', 'status').filter((e) => e.payload.state === 'offline')
    expect(offline).toHaveLength(1)
    expect(offline[0].payload.reason).toMatch(/timeout/)
    expect(lines.some((l) => l.includes('"code":"GW_MODBUS_TIMEOUT"') && l.includes('"device":"gas-102"'))).toBe(true)
    expect(lines.some((l) => l.includes('"code":"GW_MODBUS_SLAVE_OFFLINE"') && l.includes('"device":"gas-102"'))).toBe(true)

    slave(2).behaviour = { mode: 'answer' }
    await waitFor(() => (statesOf('gas-102').at(-1) === 'online' ? true : undefined), { what: 'gas-102 online again' })
    expect(statesOf('gas-102')).toEqual(['online', 'offline', 'online'])
    expect((await health()).detail).not.toContain('gas-102')
  })

  it('takes exception 0B (the gateway in front got no answer) as silence, and an exception-only answer as the slave back', async () => {
    await waitFor(() => (statesOf('gas-102').at(-1) === 'online' ? true : undefined), { what: 'gas-102 online' })
    // Modbus Application Protocol §7: 0B, gateway target device failed to respond.
    slave(2).behaviour = { mode: 'exception', code: 0x0b }
    await waitFor(() => (statesOf('gas-102').at(-1) === 'offline' ? true : undefined), { what: 'gas-102 offline behind its gateway' })
    expect(committed('gas-102', 'status').at(-1)?.payload.reason).toMatch(/exception_gateway_target_failed_to_respond/)
    // It answers again, but every read (the fault bit's register too) with 02: it is there, so online.
    slave(2).behaviour = { mode: 'exception', code: 0x02 }
    await waitFor(() => (statesOf('gas-102').at(-1) === 'online' ? true : undefined), { what: 'gas-102 online again' })
    expect(statesOf('gas-102').slice(-2)).toEqual(['offline', 'online'])
  })

  it('keeps one request on the line at a time, and polls no slave faster than its interval', () => {
    // The timeouts above held the line for 400 ms each: nothing else may have been sent meanwhile.
    // A master that overlapped would send within milliseconds; half the timeout leaves room for
    // when the test process itself noticed the bytes.
    const silentAt = served.map((r, i) => [r, served[i + 1]] as const).filter(([r, next]) => r.reply === 'silent' && next)
    expect(silentAt.length).toBeGreaterThanOrEqual(5)
    for (const [r, next] of silentAt) expect(next.at - r.at).toBeGreaterThanOrEqual(200)
    // Unit 1 answered all along; polled every 100 ms at most, however busy the line was (the
    // margin is for its first poll starting late behind the others).
    const polls = served.filter((r) => r.unit === 1 && r.functionCode === 4)
    const span = polls.at(-1)!.at - polls[0].at
    expect(polls.length).toBeLessThanOrEqual(Math.floor(span / 100) + 3)
  })

  it('counts exception responses by name, and does not take an answering slave offline', async () => {
    await waitFor(() => (statesOf('gas-103').length > 0 ? true : undefined), { what: 'gas-103 online' })
    const before = await errors(3, 'exception_illegal_data_address')
    slave(3).behaviour = { mode: 'exception', code: 0x02 }
    for (let i = 0; i < 4; i++) await nextRequest(3, 'exception')
    await waitFor(async () => ((await errors(3, 'exception_illegal_data_address')) >= before + 4 ? true : undefined), { what: 'exceptions counted' })
    expect(await rejected(3, 'exception_illegal_data_address')).toBeGreaterThanOrEqual(4)
    slave(3).behaviour = { mode: 'exception', code: 0x06 }
    await nextRequest(3, 'exception')
    await waitFor(async () => ((await errors(3, 'exception_server_device_busy')) >= 1 ? true : undefined), { what: 'busy counted' })
    expect(lines.some((l) => l.includes('"code":"GW_MODBUS_EXCEPTION"') && l.includes('"exception":2'))).toBe(true)
    expect(statesOf('gas-103')).toEqual(['online'])
  })

  it('counts responses with a corrupted CRC per slave, and takes nothing from them', async () => {
    await waitFor(() => (statesOf('gas-104').length > 0 ? true : undefined), { what: 'gas-104 online' })
    slave(4).setGas(7)
    await waitFor(() => committed('gas-104', 'reading').find((e) => e.payload.value === 7), { what: 'gas-104 at 7' })
    const before = await errors(4, 'crc')
    slave(4).setGas(44)
    slave(4).behaviour = { mode: 'bad-crc' }
    for (let i = 0; i < 3; i++) await nextRequest(4, 'bad-crc')
    await waitFor(async () => ((await errors(4, 'crc')) >= before + 3 ? true : undefined), { what: 'CRC errors counted' })
    expect(await rejected(4, 'crc')).toBeGreaterThanOrEqual(3)
    expect(await errors(1, 'crc')).toBe(0)
    expect(lines.some((l) => l.includes('"code":"GW_MODBUS_CRC"') && l.includes('"device":"gas-104"'))).toBe(true)
    // The corrupted frames carried 44 %LEL: none of it may have been believed.
    expect(committed('gas-104', 'reading').some((e) => e.payload.value === 44)).toBe(false)
  })

  it('does not take a late answer, left in the buffer after its timeout, as the answer to the next request', async () => {
    await waitFor(() => (statesOf('gas-105').length > 0 ? true : undefined), { what: 'gas-105 online' })
    slave(5).setGas(7)
    await waitFor(() => committed('gas-105', 'reading').find((e) => e.payload.value === 7), { what: 'gas-105 at 7' })
    // Gas and status (FC04) now answered only after the master timed out, carrying 33 %LEL; each
    // late answer lands behind the next temperature answer (FC03), before the next FC04 request.
    slave(5).behaviour = { mode: 'late', functionCode: 4 }
    slave(5).setGas(33)
    for (let i = 0; i < 2; i++) await nextRequest(5, 'late')
    slave(5).setGas(22)
    slave(5).behaviour = { mode: 'answer' }
    // The last late answer (33) is on its way behind the next FC03 answer; the FC04 request after it
    // must be answered by the slave's current 22, not by what was left in the buffer.
    await waitFor(() => committed('gas-105', 'reading').find((e) => e.payload.value === 22), { what: 'gas-105 at 22' })
    expect(committed('gas-105', 'reading').some((e) => e.payload.value === 33)).toBe(false)
    // A slave that answered late has not produced bad frames or CRC errors either.
    expect(await errors(5, 'crc')).toBe(0)
    expect(await errors(5, 'bad_frame')).toBe(0)
  })

  it('reopens the port with backoff when the adapter disappears, and polls again', async () => {
    const reconnects = () => counter('gateway_input_reconnects_total', { input: 'modbus', source: BUS })
    const before = await reconnects()
    await line.close()
    await pair.kill()
    await waitFor(async () => ((await health()).ok ? undefined : true), { what: 'bus reported down' })
    // The port reports itself closed a moment before its close event reaches the input.
    await waitFor(() => (lines.some((l) => l.includes('"code":"GW_SERIAL_PORT_LOST"')) ? true : undefined), { what: 'the port-lost line' })
    await waitFor(async () => ((await health()).detail?.includes('attempts)') ? true : undefined), { what: 'a failed attempt to reopen' })
    expect(await reconnects()).toBe(before)
    await pair.restart()
    await openLine()
    slave(1).setGas(9.9)
    await waitFor(() => committed('gas-101', 'reading').find((e) => e.payload.value === 9.9), { what: 'a reading after the reconnect' })
    expect((await health()).ok).toBe(true)
    // Counted once the port is back, not per attempt.
    expect(await reconnects()).toBe(before + 1)
  })
})

describeWith([SOCAT])('modbus input without its port', () => {
  it('starts anyway, reports the bus down, retries with backoff and logs the loss once per interval', async () => {
    const { logger, lines } = capturingLogger('gateway')
    const base = testOfficeConfig()
    const config = testOfficeConfig({
      devices: [...base.devices, { id: 'gas-201', type: 'gas-detector', via: 'modbus' }],
      inputs: {
        modbus: [
          {
            id: 'rs485-missing',
            path: '/nonexistent/ttyUSB9',
            reconnectMinMs: 20,
            reconnectMaxMs: 40,
            slaves: [{ unit: 1, device: 'gas-201', ...gasMap }],
          },
        ],
      },
    })
    const gateway = await Gateway.start(config, { logger, processMetrics: false })
    try {
      const res = await fetch(`http://127.0.0.1:${gateway.httpPort}/healthz`)
      const health = ((await res.json()) as { inputs: Record<string, { ok: boolean; detail?: string }> }).inputs['modbus:rs485-missing']
      expect(health).toMatchObject({ ok: false, detail: expect.stringContaining('/nonexistent/ttyUSB9') })
      const attempts = async () => {
        const res = await fetch(`http://127.0.0.1:${gateway.httpPort}/healthz`)
        const detail = ((await res.json()) as { inputs: Record<string, { detail?: string }> }).inputs['modbus:rs485-missing']?.detail ?? ''
        return Number(/\((\d+) attempts\)/.exec(detail)?.[1] ?? 0)
      }
      await waitFor(async () => ((await attempts()) >= 3 ? true : undefined), { what: 'three attempts to open' })
      expect(lines.filter((l) => l.includes('"code":"GW_SERIAL_PORT_LOST"'))).toHaveLength(1)
      // Reconnects count a port that came back, not attempts.
      const metric = gateway.metrics.registry.getSingleMetric('gateway_input_reconnects_total') as Counter
      expect((await metric.get()).values.find((v) => v.labels.source === 'rs485-missing')?.value ?? 0).toBe(0)
    } finally {
      await gateway.stop()
    }
  })

  it('refuses, when the config loads, a slave whose device is not via modbus, naming the path', () => {
    expect(testOfficeConfig().inputs.modbus).toEqual([])
    expect(() =>
      testOfficeConfig({
        inputs: { modbus: [{ id: 'rs485-x', path: '/dev/null', slaves: [{ unit: 1, device: 'gas-001', ...gasMap }] }] },
      }),
    ).toThrow('/inputs/modbus/0/slaves/0/device: device "gas-001" is not via: modbus')
  })
})
