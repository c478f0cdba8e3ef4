/**
 * The Modbus RTU input against a third-party slave: pymodbus 3.0 (Debian python3-pymodbus, run by
 * the system /usr/bin/python3) serving test/fixtures/modbus/pymodbus_slave.py over a socat pty pair.
 * input-modbus.test.ts checks the input against our own simulated slaves, whose framing and
 * register encoding we wrote too; here pymodbus frames the answers and encodes the registers
 * (BinaryPayloadBuilder), and a real gateway's readings are read back from its outbox file.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import type { Counter } from 'prom-client'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Gateway } from '../../gateway/gateway.ts'
import { describeWith, PYMODBUS } from '../helpers/binaries.ts'
import { testModbusBus, testOfficeConfig } from '../helpers/office.ts'
import { SOCAT, startPtyPair, type PtyPair } from '../helpers/pty.ts'
import { capturingLogger } from '../helpers/stack.ts'
import { nextEvent, waitFor } from '../helpers/wait.ts'

const SLAVE_SCRIPT = fileURLToPath(new URL('../fixtures/modbus/pymodbus_slave.py', import.meta.url))
const PYTHON = '/usr/bin/python3'
const BUS = 'rs485-py'

type Fn = 'input' | 'holding'
type DataType = 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32'

/**
 * One register value of the slave, and the point the gateway reads it as. `raw` goes to pymodbus,
 * which encodes it; `expect` is what the outbox must hold: raw × scale, in the point's unit.
 */
interface Row {
  quantity: string
  unit: string
  function: Fn
  address: number
  type: DataType
  wordOrder?: 'big' | 'little'
  scale?: number
  raw: number
  expect: number
}

/** Unit 1: the gas detector of docs/inputs/modbus.md; high alarm (relay) bit set, fault bit clear. */
const GAS: Row[] = [
  { quantity: 'gas', unit: '%LEL', function: 'input', address: 0, type: 'uint16', scale: 0.1, raw: 123, expect: 12.3 },
  // 23.5 = 0x41BC0000: on the wire 41 BC 00 00.
  { quantity: 'temperature', unit: '°C', function: 'holding', address: 16, type: 'float32', wordOrder: 'big', raw: 23.5, expect: 23.5 },
]
/**
 * Unit 2: every other type and word order, fault bit set. Values chosen so a swapped word or byte,
 * or a lost sign, cannot decode to the same number: 36.0625 = 0x42104000 (low word not 0).
 */
const MIXED: Row[] = [
  { quantity: 'co', unit: 'ppm', function: 'input', address: 0, type: 'uint16', raw: 35, expect: 35 },
  { quantity: 'temperature', unit: '°C', function: 'holding', address: 16, type: 'float32', wordOrder: 'little', raw: 36.0625, expect: 36.0625 },
  { quantity: 'dew_point', unit: '°C', function: 'holding', address: 20, type: 'int16', scale: 0.1, raw: -55, expect: -5.5 },
  { quantity: 'energy', unit: 'kWh', function: 'holding', address: 30, type: 'uint32', wordOrder: 'big', scale: 0.01, raw: 123_456, expect: 1234.56 },
  { quantity: 'flow', unit: 'm3/h', function: 'holding', address: 32, type: 'int32', wordOrder: 'little', scale: 0.001, raw: -70_250, expect: -70.25 },
]
const STATUS_ADDRESS = 1
const bits = [
  { name: 'sensor_fault', function: 'input' as const, address: STATUS_ADDRESS, mask: 0x0001, fault: true },
  { name: 'alarm_relay', function: 'input' as const, address: STATUS_ADDRESS, mask: 0x0004 },
]
/** unit → device, and what pymodbus serves for it (unit 3 is polled but not served: silence). */
const SLAVES = [
  { unit: 1, device: 'gas-301', type: 'gas-detector', rows: GAS, status: 0x0004 },
  { unit: 2, device: 'co-302', type: 'co-detector', rows: MIXED, status: 0x0001 },
  { unit: 3, device: 'gas-303', type: 'gas-detector', rows: GAS, status: undefined },
] as const

/** The map pymodbus_slave.py takes: units 1 and 2 only. */
const slaveMap = {
  units: SLAVES.filter((s) => s.status !== undefined).map((s) => ({
    unit: s.unit,
    registers: [
      ...s.rows.map((r) => ({ function: r.function, address: r.address, type: r.type, wordOrder: r.wordOrder ?? 'big', value: r.raw })),
      { function: 'input', address: STATUS_ADDRESS, type: 'uint16', value: s.status },
    ],
  })),
}

interface WireRequest {
  unit: number
  function: number
  address: number
  count: number
}
interface IgnoredFrame {
  unit: number
  function: number
  hex: string
}
/** What pymodbus_slave.py reports on stdout, one JSON object a line. */
type WireEvent = { rx: string } | { request: WireRequest } | { ignored: IgnoredFrame } | { tx: string }

interface PymodbusSlave {
  readonly wire: WireEvent[]
  /** Emits 'request' (WireRequest) as pymodbus decoded one, 'ignored' (IgnoredFrame) for a unit it does not serve. */
  readonly events: EventEmitter
  stop(): Promise<void>
}

async function startPymodbusSlave(port: string, map: unknown, timeoutMs = 10_000): Promise<PymodbusSlave> {
  const proc: ChildProcessByStdio<null, Readable, Readable> = spawn(PYTHON, [SLAVE_SCRIPT, '--port', port, '--map', JSON.stringify(map)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  proc.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)))
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  const wire: WireEvent[] = []
  const events = new EventEmitter()
  const lines = createInterface({ input: proc.stdout })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`pymodbus slave not READY within ${timeoutMs} ms: ${stderr}`)), timeoutMs)
    const fail = (err: Error) => {
      clearTimeout(timer)
      proc.kill('SIGKILL')
      reject(err)
    }
    const early = (code: number | null) => fail(new Error(`pymodbus slave exited ${code} before READY: ${stderr}`))
    proc.once('error', fail)
    proc.once('exit', early)
    lines.on('line', (line) => {
      if (line === 'READY') {
        clearTimeout(timer)
        proc.off('exit', early)
        resolve()
        return
      }
      let event: WireEvent
      try {
        event = JSON.parse(line) as WireEvent
      } catch {
        stderr = (stderr + `stdout: ${line}\n`).slice(-4000)
        return
      }
      wire.push(event)
      if ('request' in event) events.emit('request', event.request)
      if ('ignored' in event) events.emit('ignored', event.ignored)
    })
  })
  return {
    wire,
    events,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
      await exited
      lines.close()
      if (proc.exitCode !== 0) throw new Error(`pymodbus slave exited ${proc.exitCode ?? proc.signalCode}: ${stderr}`)
    },
  }
}

interface Committed {
  device: string
  kind: string
  payload: Record<string, unknown>
}

describeWith([SOCAT, PYMODBUS])('modbus input against a pymodbus 3.0 RTU slave', () => {
  let pair: PtyPair | undefined
  let slave: PymodbusSlave | undefined
  let gateway: Gateway | undefined
  let db: Database.Database | undefined
  const { logger, lines } = capturingLogger('gateway')

  const committed = (device: string, kind: string): Committed[] =>
    (db!.prepare('SELECT body FROM outbox WHERE device = ? AND kind = ? ORDER BY seq').all(device, kind) as { body: string }[]).map(
      (r) => JSON.parse(r.body) as Committed,
    )
  const statesOf = (device: string) => committed(device, 'status').map((e) => e.payload.state)
  const metricValue = async (name: string, labels: Record<string, string>) => {
    const metric = gateway!.metrics.registry.getSingleMetric(name) as Counter | undefined
    const values = metric ? (await metric.get()).values : []
    return values.find((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))?.value
  }
  const errors = async (unit: number, reason: string) => (await metricValue('gateway_modbus_errors_total', { bus: BUS, slave: String(unit), reason })) ?? 0
  const rejected = async (unit: number, reason: string) =>
    (await metricValue('gateway_input_rejected_total', { input: 'modbus', source: `${BUS}/${unit}`, reason })) ?? 0
  const health = async () => {
    const res = await fetch(`http://127.0.0.1:${gateway!.httpPort}/healthz`)
    return ((await res.json()) as { inputs: Record<string, { ok: boolean; detail?: string }> }).inputs[`modbus:${BUS}`]
  }
  /** The next whole frame pymodbus dropped for a unit it does not serve. */
  const nextIgnored = (unit: number) =>
    nextEvent<IgnoredFrame>(
      (l) => {
        slave!.events.on('ignored', l)
        return () => slave!.events.off('ignored', l)
      },
      (f) => f.unit === unit,
    )
  const requests = () => slave!.wire.flatMap((e) => ('request' in e ? [e.request] : []))
  const ignored = () => slave!.wire.flatMap((e) => ('ignored' in e ? [e.ignored] : []))
  const sent = () => slave!.wire.flatMap((e) => ('tx' in e ? [Buffer.from(e.tx, 'hex')] : []))

  beforeAll(async () => {
    pair = await startPtyPair()
    slave = await startPymodbusSlave(pair.slaves, slaveMap)
    const base = testOfficeConfig()
    const config = testOfficeConfig({
      devices: [...base.devices, ...SLAVES.map((s) => ({ id: s.device, type: s.type, enterprise: 'ent-laojie-canteen', via: 'modbus' }))],
      reduction: { deadband: Object.fromEntries([...GAS, ...MIXED].map((r) => [r.quantity, 0])) },
      inputs: {
        modbus: [
          testModbusBus(
            BUS,
            pair.master,
            SLAVES.map((s) => ({
              unit: s.unit,
              device: s.device,
              intervalMs: 100,
              points: s.rows.map(({ quantity, unit, function: fn, address, type, wordOrder, scale }) => ({
                quantity,
                unit,
                function: fn,
                address,
                type,
                ...(wordOrder ? { wordOrder } : {}),
                ...(scale !== undefined ? { scale } : {}),
              })),
              bits,
            })),
          ),
        ],
      },
    })
    gateway = await Gateway.start(config, { logger, processMetrics: false })
    db = new Database(gateway.outbox.path, { readonly: true })
  })
  afterAll(async () => {
    db?.close()
    try {
      await gateway?.stop()
    } finally {
      try {
        // The slave before socat: with its pty gone first it would exit 3 (port lost), not 0.
        await slave?.stop()
      } finally {
        await pair?.kill()
      }
    }
  })

  for (const s of SLAVES.filter((x) => x.status !== undefined)) {
    it(`decodes unit ${s.unit} (${s.device}) exactly: ${s.rows.map((r) => `${r.type}${r.wordOrder ? `/${r.wordOrder}` : ''}`).join(', ')}`, async () => {
      for (const row of s.rows) {
        const reading = await waitFor(() => committed(s.device, 'reading').find((e) => e.payload.quantity === row.quantity), {
          what: `a ${row.quantity} reading from ${s.device}`,
        })
        expect(reading.payload, `${row.quantity}: ${row.type} raw ${row.raw}`).toEqual({ quantity: row.quantity, value: row.expect, unit: row.unit })
      }
      // Every poll decoded the same: no reading of any quantity ever differed.
      const seen = new Map<string, Set<unknown>>()
      for (const e of committed(s.device, 'reading')) seen.set(String(e.payload.quantity), (seen.get(String(e.payload.quantity)) ?? new Set()).add(e.payload.value))
      expect(Object.fromEntries([...seen].map(([q, v]) => [q, [...v]]))).toEqual(Object.fromEntries(s.rows.map((r) => [r.quantity, [r.expect]])))
    })
  }

  it('puts on the wire what the values mean: pymodbus answers float32 high word first (41 BC 00 00) and low word first (40 00 42 10)', () => {
    // RTU answer: unit, function, byte count, data, CRC. The bytes that carried the two floats.
    const data = (unit: number, fc: number, bytes: number) => sent().find((f) => f[0] === unit && f[1] === fc && f[2] === bytes)?.subarray(3, 3 + bytes).toString('hex')
    // Unit 1 FC03 at 16, 2 registers (4 bytes); unit 2 FC03 at 16 is its only 2-register holding read.
    expect(data(1, 3, 4)).toBe('41bc0000')
    expect(data(2, 3, 4)).toBe('40004210')
  })

  it('reads contiguous registers in one request, and pymodbus answered every read of a served unit without an exception', () => {
    const shapes = (unit: number) => [...new Set(requests().filter((r) => r.unit === unit).map((r) => `${r.function}:${r.address}:${r.count}`))].sort()
    expect(shapes(1)).toEqual(['3:16:2', '4:0:2'])
    // 30–33 (uint32 and int32) touch: one read; 16–17 and 20 are separate (gaps are not read).
    expect(shapes(2)).toEqual(['3:16:2', '3:20:1', '3:30:4', '4:0:2'])
    const exceptions = sent().filter((f) => (f[1] & 0x80) !== 0)
    expect(exceptions.map((f) => f.toString('hex'))).toEqual([])
  })

  it('reports unit 1 online with its relay bit shown, and unit 2 in fault from its fault bit', async () => {
    await waitFor(async () => ((await metricValue('gateway_modbus_status_bit', { bus: BUS, slave: '1', bit: 'alarm_relay' })) === 1 ? true : undefined), {
      what: 'alarm_relay bit 1 on unit 1',
    })
    expect(await metricValue('gateway_modbus_status_bit', { bus: BUS, slave: '1', bit: 'sensor_fault' })).toBe(0)
    expect(statesOf('gas-301')).toEqual(['online'])
    // The relay bit is shown, not an alarm of its own: 12.3 %LEL is under every gas level.
    expect(committed('gas-301', 'alert')).toEqual([])

    const fault = await waitFor(() => committed('co-302', 'status').find((e) => e.payload.state === 'fault'), { what: 'co-302 status fault' })
    expect(fault.payload).toEqual({ state: 'fault', reason: 'sensor_fault' })
    await waitFor(() => committed('co-302', 'alert').find((e) => e.payload.type === 'sensor.fault' && e.payload.state === 'raised'), {
      what: 'sensor.fault raised for co-302',
    })
    expect(await metricValue('gateway_modbus_status_bit', { bus: BUS, slave: '2', bit: 'sensor_fault' })).toBe(1)
    // Its first answer already carried the fault bit: one status, fault, with no online before it.
    expect(statesOf('co-302')).toEqual(['fault'])
  })

  it('takes a unit pymodbus does not serve as silent: timeouts counted, reported offline once', async () => {
    await waitFor(() => (statesOf('gas-303').includes('offline') ? true : undefined), { what: 'gas-303 offline' })
    expect((await health()).detail).toContain('gas-303')
    // Several more polls: still one offline event.
    for (let i = 0; i < 4; i++) await nextIgnored(3)
    expect(await errors(3, 'timeout')).toBeGreaterThanOrEqual(5)
    expect(await rejected(3, 'timeout')).toBeGreaterThanOrEqual(5)
    const offline = committed('gas-303', 'status').filter((e) => e.payload.state === 'offline')
    expect(offline).toHaveLength(1)
    expect(offline[0].payload.reason).toMatch(/timeout/)
    expect(statesOf('gas-303')).toEqual(['offline'])
    expect(committed('gas-303', 'reading')).toEqual([])
    expect(lines.some((l) => l.includes('"code":"GW_MODBUS_TIMEOUT"') && l.includes('"device":"gas-303"'))).toBe(true)
    expect(lines.some((l) => l.includes('"code":"GW_MODBUS_SLAVE_OFFLINE"') && l.includes('"device":"gas-303"'))).toBe(true)
    // pymodbus received whole, CRC-good requests for unit 3, always the poll's first read (FC03 at
    // 16, 2 registers; a timeout skips the rest of the poll), dropped them in its RTU framer
    // (unknown unit id), and sent nothing.
    expect(new Set(ignored().map((f) => f.hex))).toEqual(new Set(['030300100002c42c']))
    expect(requests().filter((r) => r.unit === 3)).toEqual([])
    expect(sent().filter((f) => f[0] === 3)).toEqual([])
    expect(ignored().filter((f) => f.unit !== 3)).toEqual([])
    // The units it serves never timed out, however long unit 3 held the line.
    expect(await errors(1, 'timeout')).toBe(0)
    expect(await errors(2, 'timeout')).toBe(0)
    expect((await health()).detail).not.toContain('gas-301')
    expect((await health()).detail).not.toContain('co-302')
  })
})
