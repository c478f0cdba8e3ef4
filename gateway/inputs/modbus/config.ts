/**
 * Config of the Modbus RTU input (`inputs.modbus` in the office config): one entry per RS-485 bus,
 * each with the slaves on it and, per slave, the register map of its points and status bits.
 * docs/inputs/modbus.md has a worked example. Optional fields carry their default in `default`;
 * `resolveBus()` applies them (arrays in the office config replace defaults, so they cannot merge).
 */
import Type, { type Static } from 'typebox'
import { Ident } from '../../../contracts/envelope.ts'
import type { SchemaProblem } from '../../../contracts/validate.ts'
import type { GatewayConfig } from '../../config/schema.ts'

const Quantity = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' })
const Address = Type.Integer({ minimum: 0, maximum: 0xffff })
/** FC03 Read Holding Registers or FC04 Read Input Registers (Modbus Application Protocol §6.3, §6.4). */
const RegisterFunction = Type.Enum(['holding', 'input'])

/**
 * How the registers of one point make a number. Within a register the spec fixes big-endian bytes
 * (Modbus Application Protocol §4.2); the order of the two registers of a 32-bit value is the
 * vendor's: `big` is high word first (ABCD), `little` low word first (CDAB).
 */
const dataTypes = ['uint16', 'int16', 'uint32', 'int32', 'float32'] as const
const DataType = Type.Enum([...dataTypes], { default: 'uint16' })

const Point = Type.Object(
  {
    /** The reading's quantity (`gas`, `co`, `temperature`); thresholds are looked up by it. */
    quantity: Quantity,
    /** `%LEL`, `ppm`, `°C`...; the office threshold's unit when absent. */
    unit: Type.Optional(Type.String({ maxLength: 16 })),
    function: RegisterFunction,
    address: Address,
    type: Type.Optional(DataType),
    wordOrder: Type.Optional(Type.Enum(['big', 'little'], { default: 'big' })),
    /** value = raw × scale + offset (a detector reporting 0.1 %LEL steps has scale 0.1). */
    scale: Type.Optional(Type.Number({ default: 1 })),
    offset: Type.Optional(Type.Number({ default: 0 })),
  },
  { additionalProperties: false },
)

/**
 * A bit in a status register, as gas detectors expose them (bit 0 sensor fault, bit 2 alarm relay...).
 * A `fault` bit, when set, reports the device as `status: fault` (the sensor.fault alert), and
 * `online` when it clears; other bits are only shown as the `gateway_modbus_status_bit` gauge.
 */
const StatusBit = Type.Object(
  {
    /** snake_case, shown in the fault reason and the gauge's `bit` label. */
    name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9_]*$' }),
    function: RegisterFunction,
    address: Address,
    /** The bit(s) to test: set when `register & mask` is not 0. */
    mask: Type.Integer({ minimum: 1, maximum: 0xffff }),
    fault: Type.Optional(Type.Boolean({ default: false })),
  },
  { additionalProperties: false },
)

const Slave = Type.Object(
  {
    /** Unit address on the bus: 1–247 (Modbus over Serial Line §2.2; 0 is broadcast, 248–255 reserved). */
    unit: Type.Integer({ minimum: 1, maximum: 247 }),
    /** A device in /devices with `via: modbus`. */
    device: Ident,
    intervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000, default: 1000 })),
    points: Type.Array(Point, { maxItems: 64 }),
    bits: Type.Optional(Type.Array(StatusBit, { maxItems: 32, default: [] })),
  },
  { additionalProperties: false },
)

const Bus = Type.Object(
  {
    id: Ident,
    /** The serial device: /dev/ttyUSB0, /dev/serial/by-id/... */
    path: Type.String({ minLength: 1 }),
    baudRate: Type.Optional(Type.Integer({ minimum: 300, maximum: 921_600, default: 9600 })),
    /** Modbus over Serial Line §2.5.1 asks for even parity by default; most detectors ship with none. */
    parity: Type.Optional(Type.Enum(['none', 'even', 'odd'], { default: 'none' })),
    dataBits: Type.Optional(Type.Enum([7, 8], { default: 8 })),
    stopBits: Type.Optional(Type.Enum([1, 2], { default: 1 })),
    /**
     * How long to wait for an answer before counting a timeout, on top of the time the request and
     * its answer take on the wire at this baud rate (schedule.ts requestTimeoutMs).
     */
    timeoutMs: Type.Optional(Type.Integer({ minimum: 20, maximum: 10_000, default: 500 })),
    /** Consecutive unanswered polls after which the slave's device is reported offline. */
    offlineAfter: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 3 })),
    /** Reconnect backoff when the port is gone: doubles from min to max, with jitter. */
    reconnectMinMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 60_000, default: 500 })),
    reconnectMaxMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 300_000, default: 10_000 })),
    slaves: Type.Array(Slave, { minItems: 1, maxItems: 247 }),
  },
  { additionalProperties: false },
)

export const ModbusInputsConfig = Type.Array(Bus)
export type ModbusInputsConfig = Static<typeof ModbusInputsConfig>
export const modbusDefaults: ModbusInputsConfig = []

export type BusConfig = Static<typeof Bus>
export type PointConfig = Static<typeof Point>
export type StatusBitConfig = Static<typeof StatusBit>
export type RegisterFunction = Static<typeof RegisterFunction>
export type DataType = Static<typeof DataType>

/** A point, bit, slave and bus with every default applied. */
export type Point = Required<PointConfig>
export type Bit = Required<StatusBitConfig>
export interface ResolvedSlave {
  unit: number
  device: string
  intervalMs: number
  points: Point[]
  bits: Bit[]
}
export type ResolvedBus = Required<Omit<BusConfig, 'slaves'>> & { slaves: ResolvedSlave[] }

export function resolveBus(bus: BusConfig): ResolvedBus {
  return {
    id: bus.id,
    path: bus.path,
    baudRate: bus.baudRate ?? 9600,
    parity: bus.parity ?? 'none',
    dataBits: bus.dataBits ?? 8,
    stopBits: bus.stopBits ?? 1,
    timeoutMs: bus.timeoutMs ?? 500,
    offlineAfter: bus.offlineAfter ?? 3,
    reconnectMinMs: bus.reconnectMinMs ?? 500,
    reconnectMaxMs: bus.reconnectMaxMs ?? 10_000,
    slaves: bus.slaves.map((s) => ({
      unit: s.unit,
      device: s.device,
      intervalMs: s.intervalMs ?? 1000,
      points: s.points.map((p) => ({
        quantity: p.quantity,
        unit: p.unit ?? '',
        function: p.function,
        address: p.address,
        type: p.type ?? 'uint16',
        wordOrder: p.wordOrder ?? 'big',
        scale: p.scale ?? 1,
        offset: p.offset ?? 0,
      })),
      bits: (s.bits ?? []).map((b) => ({ ...b, fault: b.fault ?? false })),
    })),
  }
}

/**
 * What the schema cannot say: references to /devices, and clashes between buses and slaves.
 * Paths are those of the office config, like load.ts's own cross-checks.
 */
export function checkModbusInputs(config: Pick<GatewayConfig, 'devices' | 'inputs'>): SchemaProblem[] {
  const problems: SchemaProblem[] = []
  const devices = new Map(config.devices.map((d) => [d.id, d]))
  const busIds = new Set<string>()
  const paths = new Set<string>()
  const polled = new Set<string>()
  config.inputs.modbus.forEach((bus, i) => {
    const at = `/inputs/modbus/${i}`
    if (busIds.has(bus.id)) problems.push({ path: `${at}/id`, message: `duplicate bus id "${bus.id}"` })
    busIds.add(bus.id)
    if (paths.has(bus.path)) problems.push({ path: `${at}/path`, message: `"${bus.path}" is already another bus` })
    paths.add(bus.path)
    if ((bus.reconnectMinMs ?? 500) > (bus.reconnectMaxMs ?? 10_000)) {
      problems.push({ path: `${at}/reconnectMinMs`, message: 'must not be above reconnectMaxMs' })
    }
    const units = new Set<number>()
    bus.slaves.forEach((s, j) => {
      const sat = `${at}/slaves/${j}`
      if (units.has(s.unit)) problems.push({ path: `${sat}/unit`, message: `unit ${s.unit} is already on bus "${bus.id}"` })
      units.add(s.unit)
      const device = devices.get(s.device)
      if (!device) problems.push({ path: `${sat}/device`, message: `no device "${s.device}" in /devices` })
      else if (device.via !== 'modbus') problems.push({ path: `${sat}/device`, message: `device "${s.device}" is not via: modbus` })
      if (polled.has(s.device)) problems.push({ path: `${sat}/device`, message: `device "${s.device}" is polled by another slave` })
      polled.add(s.device)
      if (s.points.length === 0 && (s.bits ?? []).length === 0) problems.push({ path: `${sat}/points`, message: 'a slave needs a point or a bit to poll' })
      s.points.forEach((p, k) => {
        const wide = p.type !== undefined && p.type !== 'uint16' && p.type !== 'int16'
        if (wide && p.address === 0xffff) problems.push({ path: `${sat}/points/${k}/address`, message: 'a 32-bit value needs two registers' })
      })
    })
  })
  return problems
}
