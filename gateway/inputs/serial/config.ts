/**
 * Config of the serial input (`inputs.serial` in the office config): one entry per serial line,
 * each with the checkpoint readers and patrol-wand docks wired to it. docs/inputs/serial.md has
 * the line format and a worked example. Optional fields carry their default in `default`;
 * `resolveLine()` applies them (arrays in the office config replace defaults, so they cannot merge).
 */
import Type, { type Static } from 'typebox'
import { Ident } from '../../../contracts/envelope.ts'
import type { SchemaProblem } from '../../../contracts/validate.ts'
import type { GatewayConfig } from '../../config/schema.ts'

const Line = Type.Object(
  {
    id: Ident,
    /** The serial device: /dev/ttyUSB0, /dev/serial/by-id/... (by-id survives a replug into another socket). */
    path: Type.String({ minLength: 1 }),
    baudRate: Type.Optional(Type.Integer({ minimum: 300, maximum: 921_600, default: 9600 })),
    parity: Type.Optional(
      Type.Union([Type.Literal('none'), Type.Literal('even'), Type.Literal('odd'), Type.Literal('mark'), Type.Literal('space')], { default: 'none' }),
    ),
    dataBits: Type.Optional(Type.Union([Type.Literal(7), Type.Literal(8)], { default: 8 })),
    stopBits: Type.Optional(Type.Union([Type.Literal(1), Type.Literal(2)], { default: 1 })),
    /**
     * Readers and wands on this line: devices in /devices with `via: serial`. A sentence naming any
     * other device is refused, so a reader cannot speak for a device wired elsewhere.
     */
    devices: Type.Array(Ident, { minItems: 1 }),
    /** Reconnect backoff when the port is gone (USB unplugged): doubles from min to max, with jitter. */
    reconnectMinMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 60_000, default: 500 })),
    reconnectMaxMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 300_000, default: 10_000 })),
  },
  { additionalProperties: false },
)

export const SerialInputsConfig = Type.Array(Line)
export type SerialInputsConfig = Static<typeof SerialInputsConfig>
export const serialDefaults: SerialInputsConfig = []

export type LineConfig = Static<typeof Line>
export type ResolvedLine = Required<LineConfig>

export function resolveLine(line: LineConfig): ResolvedLine {
  return {
    id: line.id,
    path: line.path,
    baudRate: line.baudRate ?? 9600,
    parity: line.parity ?? 'none',
    dataBits: line.dataBits ?? 8,
    stopBits: line.stopBits ?? 1,
    devices: line.devices,
    reconnectMinMs: line.reconnectMinMs ?? 500,
    reconnectMaxMs: line.reconnectMaxMs ?? 10_000,
  }
}

const speaksSerial = new Set(['checkpoint-reader', 'patrol-wand'])

/**
 * What the schema cannot say: references to /devices, and clashes between lines.
 * Paths are those of the office config, like load.ts's own cross-checks.
 */
export function checkSerialInputs(config: Pick<GatewayConfig, 'devices' | 'inputs'>): SchemaProblem[] {
  const problems: SchemaProblem[] = []
  const devices = new Map(config.devices.map((d) => [d.id, d]))
  const ids = new Set<string>()
  const paths = new Set<string>()
  const wired = new Set<string>()
  config.inputs.serial.forEach((line, i) => {
    const at = `/inputs/serial/${i}`
    if (ids.has(line.id)) problems.push({ path: `${at}/id`, message: `duplicate line id "${line.id}"` })
    ids.add(line.id)
    if (paths.has(line.path)) problems.push({ path: `${at}/path`, message: `"${line.path}" is already another line` })
    paths.add(line.path)
    if ((line.reconnectMinMs ?? 500) > (line.reconnectMaxMs ?? 10_000)) {
      problems.push({ path: `${at}/reconnectMinMs`, message: 'must not be above reconnectMaxMs' })
    }
    line.devices.forEach((id, j) => {
      const device = devices.get(id)
      const path = `${at}/devices/${j}`
      if (!device) problems.push({ path, message: `no device "${id}" in /devices` })
      else if (device.via !== 'serial') problems.push({ path, message: `device "${id}" is not via: serial` })
      else if (!speaksSerial.has(device.type)) problems.push({ path, message: `device "${id}" is a ${device.type}; serial lines carry checkpoint readers and patrol wands` })
      // A fixed reader is wired to one line; a wand may be docked at any dock of the office.
      if (device?.type === 'checkpoint-reader' && wired.has(id)) problems.push({ path, message: `reader "${id}" is already on another line` })
      wired.add(id)
    })
  })
  return problems
}
