/**
 * Config of the OPC UA input (`inputs.opcua` in the office config): the plant servers the gateway
 * subscribes to, and which NodeId is which device's quantity. Empty (the default) turns it off.
 *
 * Every entry is an array element, which the config loader's deep merge replaces wholesale, so
 * every field but `name`, `endpointUrl` and `items` is optional here and its default lives in
 * `resolveOpcuaServer()` (documented in docs/inputs/opcua.md). What the schema cannot say (the
 * device exists and is `via: opcua`, the NodeId parses) is checked by `checkOpcuaConfig()`.
 */
import Type, { type Static } from 'typebox'
import { Ident } from '../../../contracts/envelope.ts'
import type { SchemaProblem } from '../../../contracts/validate.ts'
import type { GatewayConfig } from '../../config/schema.ts'

/** OPC UA Part 4, 7.22.2 DataChangeFilter: absolute in the value's unit, percent of its EURange. */
const Deadband = Type.Object(
  {
    type: Type.Union([Type.Literal('absolute'), Type.Literal('percent')]),
    value: Type.Number({ minimum: 0 }),
  },
  { additionalProperties: false },
)

/** How the server samples and queues one item (Part 4, 7.21 MonitoringParameters). */
const Monitoring = {
  samplingIntervalMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000 })),
  queueSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  deadband: Type.Optional(Deadband),
}

const Item = Type.Object(
  {
    /** Standard NodeId text: `ns=2;s=Plant.gas-01`, `ns=3;i=1042`, `ns=2;g=...`, `ns=2;b=...`. */
    nodeId: Type.String({ minLength: 3, maxLength: 512, pattern: '^(ns=\\d+;)?[isgb]=.+$' }),
    /** A device of /devices with `via: opcua`. */
    device: Ident,
    quantity: Ident,
    /** Defaults to the unit of the quantity's threshold. */
    unit: Type.Optional(Type.String({ maxLength: 16 })),
    /** Multiplies the server's value (a server in mA, ppm·10, ...); 1 when absent. */
    scale: Type.Optional(Type.Number()),
    ...Monitoring,
  },
  { additionalProperties: false },
)

const Server = Type.Object(
  {
    /** Names the server in metrics (`source`), logs and health. */
    name: Ident,
    endpointUrl: Type.String({ pattern: '^opc\\.tcp://[^/\\s]+', maxLength: 512 }),
    security: Type.Optional(
      Type.Object(
        {
          /** Part 4, 7.15 MessageSecurityMode. Sign alone is not offered: a gateway never wants it. */
          mode: Type.Union([Type.Literal('None'), Type.Literal('SignAndEncrypt')]),
          /** Part 7 security policies; Basic256Sha256 is the one every current server offers. */
          policy: Type.Optional(Type.Union([Type.Literal('Basic256Sha256'), Type.Literal('Aes128_Sha256_RsaOaep'), Type.Literal('Aes256_Sha256_RsaPss')])),
        },
        { additionalProperties: false },
      ),
    ),
    /** Part 4, 5.13.2 CreateSubscription: how often the server sends what changed. */
    publishingIntervalMs: Type.Optional(Type.Integer({ minimum: 50, maximum: 3_600_000 })),
    /** Session timeout the gateway asks for: how long a server keeps the session through a network loss. */
    sessionTimeoutMs: Type.Optional(Type.Integer({ minimum: 1000, maximum: 3_600_000 })),
    /** Reconnect backoff bounds (jittered, doubling). */
    reconnect: Type.Optional(
      Type.Object(
        { initialDelayMs: Type.Optional(Type.Integer({ minimum: 10 })), maxDelayMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 })) },
        { additionalProperties: false },
      ),
    ),
    /** Defaults for every item of this server. */
    ...Monitoring,
    items: Type.Array(Item, { minItems: 1, maxItems: 100_000 }),
  },
  { additionalProperties: false },
)

export const OpcuaInputsConfig = Type.Array(Server)
export type OpcuaInputsConfig = Static<typeof OpcuaInputsConfig>
export type OpcuaServerConfig = OpcuaInputsConfig[number]
export const opcuaDefaults: OpcuaInputsConfig = []

export type DeadbandSettings = Static<typeof Deadband>

export interface OpcuaItemSettings {
  nodeId: string
  device: string
  quantity: string
  unit: string | undefined
  scale: number
  samplingIntervalMs: number
  queueSize: number
  deadband: DeadbandSettings | undefined
}

/** One server's config with every default filled in. */
export interface OpcuaServerSettings {
  name: string
  endpointUrl: string
  securityMode: 'None' | 'SignAndEncrypt'
  securityPolicy: 'None' | 'Basic256Sha256' | 'Aes128_Sha256_RsaOaep' | 'Aes256_Sha256_RsaPss'
  publishingIntervalMs: number
  sessionTimeoutMs: number
  reconnect: { initialDelayMs: number; maxDelayMs: number }
  items: OpcuaItemSettings[]
}

export function resolveOpcuaServer(s: OpcuaServerConfig): OpcuaServerSettings {
  const mode = s.security?.mode ?? 'None'
  return {
    name: s.name,
    endpointUrl: s.endpointUrl,
    securityMode: mode,
    securityPolicy: mode === 'None' ? 'None' : (s.security?.policy ?? 'Basic256Sha256'),
    publishingIntervalMs: s.publishingIntervalMs ?? 1000,
    sessionTimeoutMs: s.sessionTimeoutMs ?? 60_000,
    reconnect: { initialDelayMs: s.reconnect?.initialDelayMs ?? 1000, maxDelayMs: s.reconnect?.maxDelayMs ?? 30_000 },
    items: s.items.map((i) => ({
      nodeId: i.nodeId,
      device: i.device,
      quantity: i.quantity,
      unit: i.unit,
      scale: i.scale ?? 1,
      samplingIntervalMs: i.samplingIntervalMs ?? s.samplingIntervalMs ?? 1000,
      queueSize: i.queueSize ?? s.queueSize ?? 1,
      deadband: i.deadband ?? s.deadband,
    })),
  }
}

/** What the schema cannot check: references to /devices, NodeIds that parse, unique names and items. */
export function checkOpcuaConfig(config: GatewayConfig): SchemaProblem[] {
  const problems: SchemaProblem[] = []
  const devices = new Map(config.devices.map((d) => [d.id, d]))
  const names = new Set<string>()
  config.inputs.opcua.forEach((server, i) => {
    const at = `/inputs/opcua/${i}`
    if (names.has(server.name)) problems.push({ path: `${at}/name`, message: `duplicate server name "${server.name}"` })
    names.add(server.name)
    const seen = new Map<string, number>()
    server.items.forEach((item, j) => {
      const path = `${at}/items/${j}`
      const device = devices.get(item.device)
      if (!device) problems.push({ path: `${path}/device`, message: `no device "${item.device}" in /devices` })
      else if (device.via !== 'opcua') problems.push({ path: `${path}/device`, message: `device "${item.device}" is not via: opcua` })
      const nodeIdProblem = checkNodeId(item.nodeId)
      if (nodeIdProblem) problems.push({ path: `${path}/nodeId`, message: nodeIdProblem })
      const key = `${item.device}\u0000${item.quantity}`
      const other = seen.get(key)
      if (other !== undefined) problems.push({ path: `${path}/quantity`, message: `${item.device} ${item.quantity} is already read from item ${other}` })
      seen.set(key, j)
      if (item.deadband?.type === 'percent' && item.deadband.value > 100) {
        problems.push({ path: `${path}/deadband/value`, message: 'a percent deadband is at most 100' })
      }
    })
    if (server.deadband?.type === 'percent' && server.deadband.value > 100) {
      problems.push({ path: `${at}/deadband/value`, message: 'a percent deadband is at most 100' })
    }
  })
  return problems
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * The NodeId text forms of OPC UA Part 6, 5.3.1.10, checked here rather than with node-opcua so
 * loading a config does not load the OPC UA stack (a second of start-up) in offices without one.
 */
export function checkNodeId(text: string): string | undefined {
  const m = /^(?:ns=(\d+);)?([isgb])=(.+)$/s.exec(text)
  if (!m) return 'not a NodeId (ns=<index>;<i|s|g|b>=<identifier>)'
  if (m[1] !== undefined && Number(m[1]) > 65535) return 'namespace index above 65535'
  const id = m[3]
  switch (m[2]) {
    case 'i':
      return /^\d+$/.test(id) && Number(id) <= 0xffffffff ? undefined : 'a numeric identifier (i=) is an unsigned 32-bit integer'
    case 'g':
      return GUID.test(id) ? undefined : 'a GUID identifier (g=) looks like 09087e75-8e5e-499b-954f-f2a9603db28a'
    case 'b':
      return /^[A-Za-z0-9+/]+={0,2}$/.test(id) ? undefined : 'an opaque identifier (b=) is base64'
    default:
      return id.length <= 4096 ? undefined : 'a string identifier (s=) is at most 4096 characters'
  }
}
