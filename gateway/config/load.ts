/**
 * Loads the office config: built-in defaults, then the file, then environment overrides; checks
 * the result against the schema and then across references (a device's enterprise must exist, a
 * tag belongs to one checkpoint, ...). Every problem names its path.
 */
import { fileURLToPath } from 'node:url'
import { isPasswordHash } from '../../common/secrets.ts'
import { ConfigError, checkConfig, deepMerge, readConfigFile } from '../../common/config-file.ts'
import type { SchemaProblem } from '../../contracts/validate.ts'
import { GatewayConfigSchema, type GatewayConfig } from './schema.ts'
import { brokerDefaults } from '../../broker/config.ts'
import { cameraDefaults } from '../inputs/camera/config.ts'
import { checkModbusInputs, modbusDefaults } from '../inputs/modbus/config.ts'
import { checkOpcuaConfig, opcuaDefaults } from '../inputs/opcua/config.ts'
import { checkSerialInputs, serialDefaults } from '../inputs/serial/config.ts'

export const DEMO_CONFIG_PATH = fileURLToPath(new URL('./demo-office.yaml', import.meta.url))

/** Defaults for everything a small office need not say. Combustible gas levels are the issue's: 25 / 50 %LEL. */
export const defaults = {
  broker: { ...brokerDefaults, mode: 'embedded', external: null },
  http: { host: '127.0.0.1', port: 8081 },
  uplink: {
    batchMax: 500,
    lingerMs: 200,
    timeoutMs: 10_000,
    maxEnvelopesPerSecond: 20_000,
    maxBackoffMs: 4000,
    breakerFailures: 5,
    breakerHalfOpenMs: 4000,
  },
  // 1 GiB holds ~3 million readings: days of a busy office's telemetry through an outage.
  outbox: { quotaMb: 1024, ttlHours: { event: 90 * 24, aggregate: 30 * 24, telemetry: 7 * 24 }, maxBatchRows: 500 },
  office: { utcOffsetMinutes: 480 },
  inputs: { serial: serialDefaults, modbus: modbusDefaults, opcua: opcuaDefaults, camera: cameraDefaults },
  communities: [],
  enterprises: [],
  devices: [],
  staff: [],
  checkpoints: [],
  routes: [],
  thresholds: {
    gas: { unit: '%LEL', low: 25, high: 50, hysteresis: 5 },
  },
  reduction: { deadband: {}, maxIntervalSeconds: 300, aggregates: true, rawRetentionDays: 7 },
  camera: {
    minConfidence: 0.6,
    cooldownSeconds: 60,
    severity: { fire: 'critical', smoke: 'critical', intrusion: 'major', crowding: 'minor', loitering: 'minor' },
    windows: {},
  },
  storm: { maxAlerts: 10, windowSeconds: 60 },
  patrol: { doubleScanSeconds: 60 },
  levels: {
    bySeverity: { critical: 'street', major: 'community', minor: 'grid' },
    byType: { 'patrol.sos': 'street', 'sensor.threshold': 'street', 'patrol.incident': 'grid' },
  },
}

/** What a quantity's threshold leaves out: no debounce, no rate, stuck or stale checks. */
export const thresholdDefaults = { hysteresis: 0, debounceSamples: 1, debounceSeconds: 0, ratePerMinute: 0, stuckMinutes: 0, staleMinutes: 0 }

export interface LoadOptions {
  /** Applied last, for tests and the demo: a deep merge like the file's. */
  overrides?: unknown
  env?: NodeJS.ProcessEnv
}

export function loadGatewayConfig(path: string, options: LoadOptions = {}): GatewayConfig {
  return resolveGatewayConfig(readConfigFile(path), path, options)
}

export function resolveGatewayConfig(fileValue: unknown, source: string, options: LoadOptions = {}): GatewayConfig {
  const env = options.env ?? process.env
  let merged = deepMerge(defaults, fileValue)
  const fromEnv: Record<string, unknown> = {}
  if (env.GRIDWATCH_UPLINK_URL) fromEnv.url = env.GRIDWATCH_UPLINK_URL
  if (env.GRIDWATCH_UPLINK_TOKEN) fromEnv.token = env.GRIDWATCH_UPLINK_TOKEN
  if (Object.keys(fromEnv).length > 0) merged = deepMerge(merged, { uplink: fromEnv })
  if (env.GRIDWATCH_MQTT_PORT) merged = deepMerge(merged, { broker: { tcp: { port: Number(env.GRIDWATCH_MQTT_PORT) } } })
  if (env.GRIDWATCH_BROKER_PASSWORD && (merged as { broker?: { external?: unknown } }).broker?.external) {
    merged = deepMerge(merged, { broker: { external: { password: env.GRIDWATCH_BROKER_PASSWORD } } })
  }
  if (env.GRIDWATCH_GATEWAY_HTTP_PORT) merged = deepMerge(merged, { http: { port: Number(env.GRIDWATCH_GATEWAY_HTTP_PORT) } })
  // Turns the camera HTTP listener on (or moves it): `inputs.camera` is off by default.
  if (env.GRIDWATCH_CAMERA_PORT) merged = deepMerge(merged, { inputs: { camera: { port: Number(env.GRIDWATCH_CAMERA_PORT) } } })
  if (env.GRIDWATCH_DATA_DIR) merged = deepMerge(merged, { gateway: { dataDir: env.GRIDWATCH_DATA_DIR } })
  if (options.overrides !== undefined) merged = deepMerge(merged, options.overrides)
  merged = withThresholdDefaults(merged)
  const config = checkConfig<GatewayConfig>(GatewayConfigSchema, merged, source)
  const problems = crossCheck(config)
  if (problems.length > 0) throw new ConfigError(source, problems)
  return config
}

function withThresholdDefaults(value: unknown): unknown {
  const v = value as { thresholds?: Record<string, object> }
  if (!v || typeof v.thresholds !== 'object' || v.thresholds === null) return value
  const thresholds = Object.fromEntries(Object.entries(v.thresholds).map(([q, t]) => [q, { ...thresholdDefaults, ...t }]))
  return { ...v, thresholds }
}

function crossCheck(config: GatewayConfig): SchemaProblem[] {
  const problems: SchemaProblem[] = []
  const enterprises = new Set(config.enterprises.map((e) => e.id))
  const grids = new Set(config.communities.flatMap((c) => c.grids.map((g) => g.id)))
  const checkGrid = (grid: string | undefined, path: string) => {
    if (grid !== undefined && !grids.has(grid)) problems.push({ path, message: `no grid "${grid}" in /communities/*/grids` })
  }
  const checkOverrides = (overrides: Record<string, unknown> | undefined, path: string) => {
    for (const quantity of Object.keys(overrides ?? {})) {
      if (!config.thresholds[quantity]) problems.push({ path: `${path}/${quantity}`, message: `no quantity "${quantity}" in /thresholds to override` })
    }
  }
  config.enterprises.forEach((e, i) => {
    checkGrid(e.grid, `/enterprises/${i}/grid`)
    checkOverrides(e.thresholds, `/enterprises/${i}/thresholds`)
  })
  const seen = new Set<string>()
  config.devices.forEach((d, i) => {
    if (seen.has(d.id)) problems.push({ path: `/devices/${i}/id`, message: `duplicate device id "${d.id}"` })
    seen.add(d.id)
    checkGrid(d.grid, `/devices/${i}/grid`)
    checkOverrides(d.thresholds, `/devices/${i}/thresholds`)
    if (d.enterprise !== undefined && !enterprises.has(d.enterprise)) {
      problems.push({ path: `/devices/${i}/enterprise`, message: `no enterprise "${d.enterprise}" in /enterprises` })
    }
    const via = d.via ?? 'mqtt'
    if (d.secret === undefined) {
      // Devices log in to an external broker there, and with a client certificate need no secret.
      // Serial, Modbus and OPC UA devices are reached over the office's own wiring and never log in.
      if (via === 'http') {
        problems.push({ path: `/devices/${i}/secret`, message: 'required: a camera logs in to push its events' })
      } else if (via === 'mqtt' && !config.broker.allowAnonymous && config.broker.mode === 'embedded' && config.broker.tls?.clientCertificates !== 'required') {
        problems.push({ path: `/devices/${i}/secret`, message: 'required unless broker.allowAnonymous is true' })
      }
    } else if (!isPasswordHash(d.secret)) {
      problems.push({
        path: `/devices/${i}/secret`,
        message: 'must be a scrypt hash, not a password (make one with `npm run gateway -- hash-secret`)',
      })
    }
  })
  if (config.broker.mode === 'external' && !config.broker.external) {
    problems.push({ path: '/broker/external', message: "required when broker.mode is 'external'" })
  }
  if (config.broker.tls && config.broker.tls.clientCertificates !== 'off' && !config.broker.tls.ca) {
    problems.push({ path: '/broker/tls/ca', message: 'required to verify client certificates' })
  }
  const staff = new Set(config.staff.map((s) => s.id))
  config.staff.forEach((s, i) => {
    checkGrid(s.grid, `/staff/${i}/grid`)
    if (s.phone !== undefined && !seen.has(s.phone)) problems.push({ path: `/staff/${i}/phone`, message: `no device "${s.phone}" in /devices` })
  })
  const tags = new Map<string, string>()
  const checkpointIds = new Set<string>()
  config.checkpoints.forEach((c, i) => {
    checkGrid(c.grid, `/checkpoints/${i}/grid`)
    checkpointIds.add(c.id)
    const tag = c.tag.toUpperCase()
    const other = tags.get(tag)
    if (other !== undefined) problems.push({ path: `/checkpoints/${i}/tag`, message: `tag already belongs to checkpoint "${other}"` })
    tags.set(tag, c.id)
  })
  config.routes.forEach((r, i) => {
    const onRoute = new Set<string>()
    r.checkpoints.forEach((cp, j) => {
      if (!checkpointIds.has(cp)) problems.push({ path: `/routes/${i}/checkpoints/${j}`, message: `no checkpoint "${cp}" in /checkpoints` })
      if (onRoute.has(cp)) problems.push({ path: `/routes/${i}/checkpoints/${j}`, message: `checkpoint "${cp}" is on the route twice` })
      onRoute.add(cp)
    })
    r.schedules.forEach((s, j) =>
      s.staff.forEach((who, k) => {
        if (!staff.has(who)) problems.push({ path: `/routes/${i}/schedules/${j}/staff/${k}`, message: `no staff "${who}" in /staff` })
      }),
    )
  })
  for (const [quantity, t] of Object.entries(config.thresholds)) {
    if (!(t.low < t.high)) problems.push({ path: `/thresholds/${quantity}`, message: 'low must be below high' })
    if (t.warning !== undefined && !(t.warning < t.low)) problems.push({ path: `/thresholds/${quantity}/warning`, message: 'warning must be below low' })
    if (t.clear !== undefined && !(t.clear < (t.warning ?? t.low))) {
      problems.push({ path: `/thresholds/${quantity}/clear`, message: 'clear must be below the lowest level' })
    }
  }
  problems.push(...checkModbusInputs(config))
  problems.push(...checkSerialInputs(config))
  problems.push(...checkOpcuaConfig(config))
  // A port is opened exclusively: a serial line and a Modbus bus on one path would fight over it,
  // the second retrying forever. (Two aliases of one adapter, /dev/ttyUSB0 and a by-id link, are
  // not caught here.)
  const serialPaths = new Map(config.inputs.serial.map((line, i) => [line.path, i] as const))
  config.inputs.modbus.forEach((bus, i) => {
    const line = serialPaths.get(bus.path)
    if (line !== undefined) problems.push({ path: `/inputs/modbus/${i}/path`, message: `${bus.path} is already the port of /inputs/serial/${line}` })
  })
  // A camera pin naming no HTTP camera is a typo that would leave the camera unpinned.
  config.inputs.camera?.cameras?.forEach((pin, i) => {
    const device = config.devices.find((d) => d.id === pin.id)
    if (!device || (device.via ?? 'mqtt') !== 'http') problems.push({ path: `/inputs/camera/cameras/${i}/id`, message: `no device "${pin.id}" with via: http in /devices` })
  })
  return problems
}
