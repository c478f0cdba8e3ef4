/**
 * The Modbus input's pure parts: read planning, register decoding and scaling, failure names,
 * presence, timing, config checks; and the simulated slave's framing.
 */
import { describe, expect, it } from 'vitest'
import { ConfigError } from '../../common/config-file.ts'
import { crc16, crcHolds, readRequest } from '../../devices/modbus/rtu-frame.ts'
import { GasDetectorSlave } from '../../devices/modbus/gas-detector-slave.ts'
import { resolveGatewayConfig } from '../../gateway/config/load.ts'
import { checkModbusInputs, resolveBus, type BusConfig, type Point } from '../../gateway/inputs/modbus/config.ts'
import { classify } from '../../gateway/inputs/modbus/failures.ts'
import { SlavePresence } from '../../gateway/inputs/modbus/presence.ts'
import { bitValue, planReads, pointValue, rawValue, RegisterImage } from '../../gateway/inputs/modbus/registers.ts'
import { interFrameMs, nextDue, readAnswerBytes, requestTimeoutMs } from '../../gateway/inputs/modbus/schedule.ts'
import { backoffMs, PortBackoff } from '../../gateway/inputs/port-backoff.ts'

const point = (p: Partial<Point> & Pick<Point, 'address'>): Point => ({
  quantity: 'gas',
  unit: '%LEL',
  function: 'input',
  type: 'uint16',
  wordOrder: 'big',
  scale: 1,
  offset: 0,
  ...p,
})
const image = (fn: 'holding' | 'input', start: number, values: number[]) => {
  const img = new RegisterImage()
  img.set(fn, start, values)
  return img
}

describe('planReads', () => {
  it('batches touching and overlapping registers into one read per table, never reading a gap', () => {
    const blocks = planReads({
      points: [
        point({ address: 0 }),
        point({ address: 1, type: 'float32' }), // 1–2, touches 0
        point({ address: 10 }), // gap: a read of its own
        point({ address: 16, function: 'holding', type: 'int32' }),
      ],
      bits: [{ name: 'fault', function: 'input', address: 2, mask: 1, fault: true }], // inside 1–2
    })
    expect(blocks).toEqual([
      { function: 'holding', start: 16, count: 2 },
      { function: 'input', start: 0, count: 3 },
      { function: 'input', start: 10, count: 1 },
    ])
  })

  it('splits at 125 registers, the most FC03/FC04 may read', () => {
    const points = Array.from({ length: 130 }, (_, i) => point({ address: i }))
    expect(planReads({ points, bits: [] })).toEqual([
      { function: 'input', start: 0, count: 125 },
      { function: 'input', start: 125, count: 5 },
    ])
  })
})

describe('register decoding', () => {
  it.each([
    ['uint16', [0xfffe], 'big', 65534],
    ['int16', [0xfffe], 'big', -2],
    ['uint32', [0x0001, 0x0002], 'big', 0x00010002],
    ['uint32', [0x0002, 0x0001], 'little', 0x00010002],
    ['int32', [0xffff, 0xfffe], 'big', -2],
    ['int32', [0xfffe, 0xffff], 'little', -2],
    ['float32', [0x41ac, 0x0000], 'big', 21.5],
    ['float32', [0x0000, 0x41ac], 'little', 21.5],
    ['float32', [0x41aa, 0x6666], 'big', 21.3],
  ] as const)('%s %j (%s word first) is %d', (type, regs, wordOrder, want) => {
    expect(rawValue(point({ address: 5, type, wordOrder }), image('input', 5, [...regs]))).toBe(want)
  })

  it('applies scale and offset without binary noise', () => {
    expect(pointValue(point({ address: 0, scale: 0.1 }), image('input', 0, [123]))).toBe(12.3)
    expect(pointValue(point({ address: 0, scale: 0.1 }), image('input', 0, [3]))).toBe(0.3)
    expect(pointValue(point({ address: 0, type: 'int16', scale: 0.1, offset: -40 }), image('input', 0, [0xffff]))).toBe(-40.1)
  })

  it('gives no value when a register is missing, from the other table, or the float is NaN', () => {
    expect(pointValue(point({ address: 0, type: 'uint32' }), image('input', 0, [1]))).toBeUndefined()
    expect(pointValue(point({ address: 0, function: 'holding' }), image('input', 0, [1]))).toBeUndefined()
    expect(pointValue(point({ address: 0, type: 'float32' }), image('input', 0, [0x7fc0, 0x0000]))).toBeUndefined()
  })

  it('tests status bits by mask', () => {
    const img = image('input', 1, [0b0101])
    expect(bitValue({ function: 'input', address: 1, mask: 0x0001 }, img)).toBe(true)
    expect(bitValue({ function: 'input', address: 1, mask: 0x0002 }, img)).toBe(false)
    expect(bitValue({ function: 'input', address: 1, mask: 0x0006 }, img)).toBe(true)
    expect(bitValue({ function: 'input', address: 2, mask: 0x0001 }, img)).toBeUndefined()
  })
})

describe('failures', () => {
  it('names timeouts, CRC errors and each exception code', () => {
    expect(classify({ name: 'TransactionTimedOutError', message: 'Timed out', errno: 'ETIMEDOUT' })).toMatchObject({ reason: 'timeout', code: 'GW_MODBUS_TIMEOUT', silent: true })
    expect(classify(new Error('CRC error'))).toMatchObject({ reason: 'crc', code: 'GW_MODBUS_CRC', silent: true })
    const exception = (modbusCode: number) => classify(Object.assign(new Error(`Modbus exception ${modbusCode}`), { modbusCode }))
    expect(exception(1)).toMatchObject({ reason: 'exception_illegal_function', code: 'GW_MODBUS_EXCEPTION', silent: false, exception: 1 })
    expect(exception(2).reason).toBe('exception_illegal_data_address')
    expect(exception(4).reason).toBe('exception_server_device_failure')
    expect(exception(6).reason).toBe('exception_server_device_busy')
    expect(exception(0x0b).reason).toBe('exception_gateway_target_failed_to_respond')
    expect(exception(0x09).reason).toBe('exception_unknown')
    expect(classify(new Error('Data length error, expected 9 got 7'))).toMatchObject({ reason: 'bad_frame', silent: true })
  })

  it('takes 0A and 0B, a gateway saying the slave behind it did not answer, as no answer (Modbus Application Protocol §7)', () => {
    const exception = (modbusCode: number) => classify(Object.assign(new Error(`Modbus exception ${modbusCode}`), { modbusCode }))
    expect(exception(0x0a)).toMatchObject({ reason: 'exception_gateway_path_unavailable', code: 'GW_MODBUS_EXCEPTION', silent: true, exception: 0x0a })
    expect(exception(0x0b)).toMatchObject({ reason: 'exception_gateway_target_failed_to_respond', code: 'GW_MODBUS_EXCEPTION', silent: true, exception: 0x0b })
    for (const code of [1, 2, 3, 4, 5, 6, 8]) expect(exception(code).silent, `exception ${code}`).toBe(false)
  })
})

describe('SlavePresence', () => {
  it('goes offline once after N unanswered polls and online on the next answer', () => {
    const p = new SlavePresence(3)
    const send = (s: ReturnType<SlavePresence['answered']>) => {
      if (s) p.committed(s)
      return s
    }
    expect(send(p.answered([]))).toEqual({ state: 'online' })
    expect(send(p.answered([]))).toBeUndefined()
    expect(send(p.unanswered('timeout'))).toBeUndefined()
    expect(send(p.unanswered('timeout'))).toBeUndefined()
    expect(send(p.unanswered('crc'))).toEqual({ state: 'offline', reason: 'no valid answer to 3 polls (last: crc)' })
    expect(send(p.unanswered('timeout'))).toBeUndefined()
    expect(p.offline).toBe(true)
    expect(send(p.answered([]))).toEqual({ state: 'online' })
    expect(p.failures).toBe(0)
  })

  it('reports a fault while a fault bit is set, and resends a state whose commit failed', () => {
    const p = new SlavePresence(2)
    p.committed({ state: 'online' })
    expect(p.answered(['sensor_fault'])).toEqual({ state: 'fault', reason: 'sensor_fault' })
    // Not committed: asked again on the next poll.
    expect(p.answered(['sensor_fault'])).toEqual({ state: 'fault', reason: 'sensor_fault' })
    p.committed({ state: 'fault' })
    expect(p.answered(['sensor_fault'])).toBeUndefined()
    expect(p.answered([])).toEqual({ state: 'online' })
  })

  it('reports online a slave back from offline whose fault-bit register answers with an exception', () => {
    const p = new SlavePresence(1)
    p.committed({ state: 'online' })
    expect(p.answeredFaultsUnknown()).toBeUndefined()
    const offline = p.unanswered('timeout')
    expect(offline).toMatchObject({ state: 'offline' })
    p.committed(offline!)
    expect(p.answeredFaultsUnknown()).toEqual({ state: 'online' })
    expect(p.failures).toBe(0)
    p.committed({ state: 'online' })
    expect(p.answeredFaultsUnknown()).toBeUndefined()
  })
})

describe('schedule', () => {
  it('keeps each slave on its own grid, however long a poll took', () => {
    expect(nextDue(1000, 500, 1200)).toBe(1500)
    expect(nextDue(1000, 500, 1499)).toBe(1500)
  })

  it('skips missed slots instead of firing them in a burst', () => {
    expect(nextDue(1000, 500, 2700)).toBe(3000)
    expect(nextDue(1000, 500, 3000)).toBe(3000)
  })

  it('backs off by doubling to the cap, with jitter between half and all of it', () => {
    expect(backoffMs(0, 500, 10_000, () => 1)).toBe(500)
    expect(backoffMs(3, 500, 10_000, () => 1)).toBe(4000)
    expect(backoffMs(50, 500, 10_000, () => 1)).toBe(10_000)
    expect(backoffMs(50, 500, 10_000, () => 0)).toBe(5000)
  })

  it('never backs off below the minimum', () => {
    expect(backoffMs(0, 500, 10_000, () => 0)).toBe(500)
    expect(backoffMs(1, 500, 10_000, () => 0)).toBe(500)
  })

  it('stays bounded after any number of failures', () => {
    const b = new PortBackoff(500, 10_000)
    for (let i = 0; i < 10_000; i++) b.next()
    const d = b.next()
    expect(d).toBeGreaterThanOrEqual(5000)
    expect(d).toBeLessThanOrEqual(10_000)
  })

  it('starts the backoff over only once a reopened port stayed up or carried an answer', () => {
    const r = new PortBackoff(100, 10_000, 5000, () => 1)
    expect([r.next(), r.next()]).toEqual([100, 200])
    // An adapter that opens and fails at once keeps backing off.
    for (let i = 0; i < 3; i++) {
      r.opened(1000)
      r.closed(1010)
      r.next()
    }
    expect(r.failures).toBe(5)
    expect(r.next()).toBe(3200)
    // Up long enough: the next loss starts from the minimum again.
    r.opened(10_000)
    r.closed(15_000)
    expect(r.next()).toBe(100)
    // An answer through the port proves it at once.
    r.opened(20_000)
    r.proven()
    r.closed(20_010)
    expect(r.next()).toBe(100)
  })

  it('waits for an answer as long as timeoutMs plus the request and the answer on the wire', () => {
    const bus = { baudRate: 9600, parity: 'even', dataBits: 8, stopBits: 1, timeoutMs: 500 }
    // 125 registers: a 255-byte answer, ~292 ms at 9600 baud with 11-bit characters.
    expect(readAnswerBytes(125)).toBe(255)
    expect((readAnswerBytes(125) * 11 * 1000) / 9600).toBeCloseTo(292.2, 1)
    // Request (8) and answer (255) bytes, 11 bits each, on top of timeoutMs.
    expect(requestTimeoutMs(bus, 125)).toBe(Math.ceil(500 + (263 * 11 * 1000) / 9600))
    expect(requestTimeoutMs({ ...bus, baudRate: 300 }, 125)).toBeGreaterThan(9400 + 500)
    // 8N1 is 10 bits a character; a one-register read at 115200 adds about a millisecond.
    expect(requestTimeoutMs({ ...bus, parity: 'none', baudRate: 115_200 }, 1)).toBe(Math.ceil(500 + (15 * 10 * 1000) / 115_200))
  })

  it('keeps 3.5 characters of silence between frames, 1.75 ms above 19200 baud', () => {
    expect(interFrameMs(9600)).toBeCloseTo(4.01, 2)
    expect(interFrameMs(115_200)).toBe(1.75)
  })
})

describe('modbus config', () => {
  const minimal = {
    gateway: { id: 'gw-1', dataDir: '/tmp/x' },
    office: { id: 'o1', name: 'Office' },
    uplink: { url: 'http://center:8080' },
  }
  const bus = (over: Partial<BusConfig> = {}): BusConfig => ({
    id: 'bus-1',
    path: '/dev/ttyUSB0',
    slaves: [{ unit: 1, device: 'gas-1', points: [{ quantity: 'gas', function: 'input', address: 0 }] }],
    ...over,
  })
  const problemsOf = (inputs: unknown) => {
    try {
      resolveGatewayConfig({ ...minimal, devices: [{ id: 'gas-1', type: 'gas-detector', via: 'modbus' }], inputs: { modbus: inputs } }, 'test', { env: {} })
    } catch (err) {
      if (err instanceof ConfigError) return err.problems
      throw err
    }
    return []
  }

  it('accepts a bus and fills the documented defaults', () => {
    expect(problemsOf([bus()])).toEqual([])
    const r = resolveBus(bus())
    expect(r).toMatchObject({ baudRate: 9600, parity: 'none', dataBits: 8, stopBits: 1, timeoutMs: 500, offlineAfter: 3 })
    expect(r.slaves[0]).toMatchObject({ intervalMs: 1000, bits: [], points: [{ type: 'uint16', wordOrder: 'big', scale: 1, offset: 0, unit: '' }] })
  })

  it('names the path of each schema problem', () => {
    const problems = problemsOf([
      bus({
        parity: 'mark' as never,
        slaves: [{ unit: 248, device: 'gas-1', points: [{ quantity: 'gas', function: 'coils' as never, address: 0, type: 'float64' as never }] }],
      }),
    ])
    expect(problems).toEqual([
      { path: '/inputs/modbus/0/parity', message: expect.stringContaining('allowed values') },
      { path: '/inputs/modbus/0/slaves/0/unit', message: 'must be <= 247' },
      { path: '/inputs/modbus/0/slaves/0/points/0/function', message: expect.stringContaining('allowed values') },
      { path: '/inputs/modbus/0/slaves/0/points/0/type', message: expect.stringContaining('allowed values') },
    ])
  })

  it('checks references to devices and clashes on a bus', () => {
    const devices = [
      { id: 'gas-1', type: 'gas-detector' as const, via: 'modbus' as const },
      { id: 'gas-2', type: 'gas-detector' as const },
    ]
    const point0 = [{ quantity: 'gas', function: 'input' as const, address: 0 }]
    const problems = checkModbusInputs({
      devices,
      inputs: {
        serial: [],
        opcua: [],
        camera: undefined as never,
        modbus: [
          bus({
            slaves: [
              { unit: 1, device: 'gas-1', points: point0 },
              { unit: 1, device: 'gas-2', points: point0 },
              { unit: 2, device: 'gas-9', points: [] },
            ],
          }),
          bus({ slaves: [{ unit: 1, device: 'gas-1', points: point0 }] }),
        ],
      },
    })
    expect(problems).toEqual([
      { path: '/inputs/modbus/0/slaves/1/unit', message: 'unit 1 is already on bus "bus-1"' },
      { path: '/inputs/modbus/0/slaves/1/device', message: 'device "gas-2" is not via: modbus' },
      { path: '/inputs/modbus/0/slaves/2/device', message: 'no device "gas-9" in /devices' },
      { path: '/inputs/modbus/0/slaves/2/points', message: 'a slave needs a point or a bit to poll' },
      { path: '/inputs/modbus/1/id', message: 'duplicate bus id "bus-1"' },
      { path: '/inputs/modbus/1/path', message: '"/dev/ttyUSB0" is already another bus' },
      { path: '/inputs/modbus/1/slaves/0/device', message: 'device "gas-1" is polled by another slave' },
    ])
  })
})

describe('simulated slave framing', () => {
  it('computes CRC-16/MODBUS (check value 0x4B37; the spec example 01 03 00 00 00 0A → C5 CD)', () => {
    expect(crc16(Buffer.from('123456789'))).toBe(0x4b37)
    expect(readRequest(1, 3, 0, 10)).toEqual(Buffer.from('01030000000AC5CD', 'hex'))
    expect(crcHolds(Buffer.from('01030000000AC5CD', 'hex'))).toBe(true)
    expect(crcHolds(Buffer.from('01030000000AC5CE', 'hex'))).toBe(false)
  })

  it('answers reads, exceptions for unknown addresses and functions, and a corrupted CRC on request', () => {
    const s = new GasDetectorSlave(7, { gas: 12.3 })
    const req = (functionCode: number, start: number, count: number) => s.respond({ unit: 7, functionCode, start, count })
    expect(req(4, 0, 2).frame).toEqual(Buffer.concat([Buffer.from('070404007B0000', 'hex'), crcOf('070404007B0000')]))
    expect(req(4, 0, 3)).toMatchObject({ reply: 'exception', frame: Buffer.concat([Buffer.from('078402', 'hex'), crcOf('078402')]) })
    expect(req(6, 0, 1).frame?.subarray(1, 3)).toEqual(Buffer.from('8601', 'hex'))
    expect(req(4, 0, 126).frame?.subarray(1, 3)).toEqual(Buffer.from('8403', 'hex'))
    s.behaviour = { mode: 'bad-crc' }
    const bad = req(4, 0, 2)
    expect(bad.reply).toBe('bad-crc')
    expect(crcHolds(bad.frame!)).toBe(false)
    s.behaviour = { mode: 'silent' }
    expect(req(4, 0, 2)).toEqual({ reply: 'silent' })
  })
})

function crcOf(hex: string): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16LE(crc16(Buffer.from(hex, 'hex')))
  return b
}
