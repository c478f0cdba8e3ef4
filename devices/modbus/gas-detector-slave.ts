/**
 * Simulated Modbus RTU slaves on a serial path (a real RS-485 adapter, or one end of a socat pty
 * pair): a line answers FC03/FC04 for each slave on it, and each slave can be told to change its
 * registers, stop answering, answer with an exception, corrupt its CRC, or answer too late.
 * `GasDetectorSlave` lays out its registers the way Chinese fixed gas detectors commonly do
 * (docs/inputs/modbus.md).
 */
import { EventEmitter } from 'node:events'
import { SerialPort } from 'serialport'
import { crcHolds, exceptionResponse, READ_REQUEST_LENGTH, readResponse, type ReadRequest } from './rtu-frame.ts'

export type RegisterTable = 'holding' | 'input'

/** How a slave treats the next requests addressed to it. */
export type SlaveBehaviour =
  | { mode: 'answer' }
  /** No reply at all: the master times out. */
  | { mode: 'silent' }
  /** An exception response with this code (01–0B, Modbus Application Protocol §7). */
  | { mode: 'exception'; code: number }
  /** The right answer with its CRC inverted. */
  | { mode: 'bad-crc' }
  /**
   * Reads of this function are answered after the master gave up on them: the answer is held back
   * and sent right behind this slave's next answer to another read, so it lands on the line
   * between two requests of the master, as a slow slave's answer does. A later late answer
   * replaces a held one; a held answer goes out even after the behaviour changed.
   */
  | { mode: 'late'; functionCode: number }

export type Reply = 'data' | 'exception' | 'silent' | 'bad-crc' | 'late'

export interface ServedRequest extends ReadRequest {
  reply: Reply
}

export class SimulatedSlave {
  behaviour: SlaveBehaviour = { mode: 'answer' }
  private readonly tables: Record<RegisterTable, Map<number, number>> = { holding: new Map(), input: new Map() }

  constructor(readonly unit: number) {}

  setRegister(table: RegisterTable, address: number, value: number): void {
    this.tables[table].set(address, value & 0xffff)
  }

  register(table: RegisterTable, address: number): number | undefined {
    return this.tables[table].get(address)
  }

  /** A float32 in two registers; `big` puts the high word first (ABCD), `little` the low word (CDAB). */
  setFloat32(table: RegisterTable, address: number, value: number, wordOrder: 'big' | 'little' = 'big'): void {
    const buf = Buffer.alloc(4)
    buf.writeFloatBE(value, 0)
    const [hi, lo] = [buf.readUInt16BE(0), buf.readUInt16BE(2)]
    this.setRegister(table, address, wordOrder === 'big' ? hi : lo)
    this.setRegister(table, address + 1, wordOrder === 'big' ? lo : hi)
  }

  /** The reply to a read, by the spec's checks in order (Modbus Application Protocol §6.3 state diagram). */
  respond(req: ReadRequest): { reply: Reply; frame?: Buffer } {
    const b = this.behaviour
    if (b.mode === 'late' && req.functionCode === b.functionCode) {
      const { frame } = this.answer(req, { mode: 'answer' })
      return { reply: 'late', frame }
    }
    return this.answer(req, b)
  }

  private answer(req: ReadRequest, b: SlaveBehaviour): { reply: Reply; frame?: Buffer } {
    if (b.mode === 'silent') return { reply: 'silent' }
    if (b.mode === 'exception') return { reply: 'exception', frame: exceptionResponse(this.unit, req.functionCode, b.code) }
    const table: RegisterTable | undefined = req.functionCode === 3 ? 'holding' : req.functionCode === 4 ? 'input' : undefined
    // 01 illegal function, 03 quantity outside 1–125, 02 an address the map does not have.
    if (!table) return { reply: 'exception', frame: exceptionResponse(this.unit, req.functionCode, 0x01) }
    if (req.count < 1 || req.count > 125) return { reply: 'exception', frame: exceptionResponse(this.unit, req.functionCode, 0x03) }
    const registers: number[] = []
    for (let a = req.start; a < req.start + req.count; a++) {
      const v = this.tables[table].get(a)
      if (v === undefined) return { reply: 'exception', frame: exceptionResponse(this.unit, req.functionCode, 0x02) }
      registers.push(v)
    }
    const frame = readResponse(this.unit, req.functionCode, registers)
    if (b.mode === 'bad-crc') {
      frame[frame.length - 2] ^= 0xff
      frame[frame.length - 1] ^= 0xff
      return { reply: 'bad-crc', frame }
    }
    return { reply: 'data', frame }
  }
}

/** Register map of the simulated gas detector. */
export const GAS_DETECTOR_MAP = {
  /** Input register 0: concentration in 0.1 %LEL steps (uint16, scale 0.1). */
  gas: { table: 'input', address: 0 },
  /** Input register 1: bit 0 sensor fault, bit 1 low alarm, bit 2 high alarm (relay). */
  status: { table: 'input', address: 1 },
  /** Holding registers 16–17: sensor temperature, °C, float32 high word first. */
  temperature: { table: 'holding', address: 16 },
} as const
export const STATUS_SENSOR_FAULT = 0x0001
export const STATUS_LOW_ALARM = 0x0002
export const STATUS_HIGH_ALARM = 0x0004

export class GasDetectorSlave extends SimulatedSlave {
  private status = 0

  constructor(unit: number, options: { gas?: number; temperature?: number } = {}) {
    super(unit)
    this.setGas(options.gas ?? 0)
    this.setTemperature(options.temperature ?? 20)
    this.setRegister('input', GAS_DETECTOR_MAP.status.address, 0)
  }

  /** %LEL, stored in 0.1 steps; the detector's own alarm bits follow the 25/50 %LEL levels. */
  setGas(percentLel: number): void {
    this.setRegister('input', GAS_DETECTOR_MAP.gas.address, Math.round(percentLel * 10))
    this.status = (this.status & ~(STATUS_LOW_ALARM | STATUS_HIGH_ALARM)) | (percentLel >= 25 ? STATUS_LOW_ALARM : 0) | (percentLel >= 50 ? STATUS_HIGH_ALARM : 0)
    this.setRegister('input', GAS_DETECTOR_MAP.status.address, this.status)
  }

  setTemperature(celsius: number): void {
    this.setFloat32('holding', GAS_DETECTOR_MAP.temperature.address, celsius)
  }

  setFault(on: boolean): void {
    this.status = on ? this.status | STATUS_SENSOR_FAULT : this.status & ~STATUS_SENSOR_FAULT
    this.setRegister('input', GAS_DETECTOR_MAP.status.address, this.status)
  }
}

/**
 * One serial line shared by slaves, as on RS-485: every slave sees every request and only the one
 * addressed answers. Emits `request` (ServedRequest) for each well-formed read it saw.
 */
export class SlaveLine extends EventEmitter<{ request: [ServedRequest] }> {
  private buffer = Buffer.alloc(0)
  private idle: NodeJS.Timeout | undefined
  private readonly slaves = new Map<number, SimulatedSlave>()
  /** Late answers waiting for their slave's next answer, by unit. */
  private readonly held = new Map<number, Buffer>()

  private constructor(private readonly port: SerialPort) {
    super()
    port.on('data', (chunk: Buffer) => this.received(chunk))
    // A master that hangs up (the pty's other end closing) is not the simulator's problem.
    port.on('error', () => undefined)
  }

  static async open(path: string, slaves: SimulatedSlave[], options: { baudRate?: number } = {}): Promise<SlaveLine> {
    const port = new SerialPort({ path, baudRate: options.baudRate ?? 9600, autoOpen: false })
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())))
    const line = new SlaveLine(port)
    for (const s of slaves) line.add(s)
    return line
  }

  add(slave: SimulatedSlave): void {
    this.slaves.set(slave.unit, slave)
  }

  close(): Promise<void> {
    clearTimeout(this.idle)
    if (!this.port.isOpen) return Promise.resolve()
    return new Promise((resolve) => this.port.close(() => resolve()))
  }

  /**
   * RTU frames end with a silence (Modbus over Serial Line §2.5.1.1). A pty has no character
   * timing, so a read request is taken as soon as its 8 bytes hold a good CRC, and anything else
   * is dropped after a short quiet spell, as a slave drops a frame that fails its CRC.
   */
  private received(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk])
    while (this.buffer.length >= READ_REQUEST_LENGTH) {
      const frame = this.buffer.subarray(0, READ_REQUEST_LENGTH)
      if (!crcHolds(frame)) {
        this.buffer = this.buffer.subarray(1)
        continue
      }
      this.buffer = this.buffer.subarray(READ_REQUEST_LENGTH)
      this.serve({ unit: frame[0], functionCode: frame[1], start: frame.readUInt16BE(2), count: frame.readUInt16BE(4) })
    }
    clearTimeout(this.idle)
    if (this.buffer.length > 0) this.idle = setTimeout(() => (this.buffer = Buffer.alloc(0)), 20)
  }

  private serve(req: ReadRequest): void {
    // Unit 0 is broadcast and never answered (Modbus over Serial Line §2.2); other units are not ours.
    const slave = this.slaves.get(req.unit)
    if (!slave) return
    const { reply, frame } = slave.respond(req)
    if (reply === 'late') {
      if (frame) this.held.set(req.unit, frame)
    } else if (frame) {
      // One write: the late answer reaches the master in the same read as this one, after it.
      const late = this.held.get(req.unit)
      this.held.delete(req.unit)
      this.port.write(late ? Buffer.concat([frame, late]) : frame)
    }
    this.emit('request', { ...req, reply })
  }
}

/** Gas detectors at the given unit addresses on one line: what `npm run devices` and tests start. */
export async function startGasDetectors(path: string, units: number[], options: { baudRate?: number; gas?: number } = {}): Promise<{ line: SlaveLine; detectors: GasDetectorSlave[] }> {
  const detectors = units.map((u) => new GasDetectorSlave(u, { gas: options.gas ?? 0 }))
  const line = await SlaveLine.open(path, detectors, options)
  return { line, detectors }
}
