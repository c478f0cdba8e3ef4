/**
 * cloud-api configuration: a YAML/JSON file (`--config`, or GRIDWATCH_CLOUD_CONFIG), then
 * environment overrides. With neither, the built-in demo config runs, with a warning.
 *
 * Environment: PORT, HOST, STORE=sqlite|influx, SQLITE_PATH, INFLUX_URL, INFLUX_DB, CENTER_DB. The
 * store variables change only the keys they name (see envStore).
 *
 * The organization (districts → offices → enterprises and patrol routes) is what scoping and
 * patrol compliance are computed from. People and gateways can be declared here (hashes only,
 * for infrastructure-as-code) and/or managed at run time with the CLI and the admin API, which
 * keep them in the center database.
 */
import Type, { type Static } from 'typebox'
import { Ident } from '../contracts/envelope.ts'
import { ConfigError, checkConfig, deepMerge, readConfigFile } from '../common/config-file.ts'
import type { SchemaProblem } from '../contracts/validate.ts'
import { hashToken } from '../common/secrets.ts'
import { RouteSchema } from '../gateway/config/schema.ts'
import { DEMO_CONFIG_PATH } from '../gateway/config/load.ts'
import { Severities } from '../contracts/envelope.ts'
import { DEMO_GATEWAY_TOKEN, DEMO_VIEWER_TOKEN } from '../devices/demo-credentials.ts'
import { Roles } from './access/principal.ts'

export const TokenHash = Type.String({ pattern: '^sha256\\$[A-Za-z0-9_-]{43}$' })
export const PasswordHash = Type.String({ pattern: '^scrypt\\$\\d+\\$\\d+\\$\\d+\\$[A-Za-z0-9_-]+\\$[A-Za-z0-9_-]+$' })
const Name = Type.String({ minLength: 1, maxLength: 128 })

/**
 * The levels a trend chart draws, per quantity: warning (the gateway's low alarm) and alarm (its
 * high alarm). Display only; the gateway's own thresholds decide alerts.
 */
const Levels = Type.Record(
  Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' }),
  Type.Object({ unit: Type.Optional(Type.String({ maxLength: 16 })), warning: Type.Optional(Type.Number()), alarm: Type.Optional(Type.Number()) }, { additionalProperties: false }),
)
export type LevelsConfig = Static<typeof Levels>
const Enterprise = Type.Object({ id: Ident, name: Name, levels: Type.Optional(Levels) }, { additionalProperties: false })
const Office = Type.Object(
  {
    id: Ident,
    name: Name,
    /** Local time of the office, for patrol days and schedules (China: 480). */
    utcOffsetMinutes: Type.Integer({ minimum: -720, maximum: 840 }),
    enterprises: Type.Array(Enterprise),
    /** The office's patrol routes, in the gateway's own route format, for compliance. */
    routes: Type.Array(RouteSchema),
    /** Chart levels per quantity (enterprises may override them). */
    levels: Type.Optional(Levels),
    /** Names of the checkpoints the routes name, for the patrol board. */
    checkpoints: Type.Optional(Type.Array(Type.Object({ id: Ident, name: Name }, { additionalProperties: false }))),
  },
  { additionalProperties: false },
)
const District = Type.Object({ id: Ident, name: Name, offices: Type.Array(Office) }, { additionalProperties: false })

/** Who a user is and what they may see: admins all, center staff one district, and so on. */
export const UserScopeSchema = Type.Object(
  {
    district: Type.Optional(Ident),
    offices: Type.Optional(Type.Array(Ident, { maxItems: 500 })),
    enterprises: Type.Optional(Type.Array(Ident, { maxItems: 5000 })),
  },
  { additionalProperties: false },
)
export const UserSchema = Type.Object(
  {
    name: Ident,
    role: Type.Enum([...Roles]),
    scope: UserScopeSchema,
    passwordHash: Type.Optional(PasswordHash),
    tokenHashes: Type.Optional(Type.Array(TokenHash)),
  },
  { additionalProperties: false },
)
export type UserConfig = Static<typeof UserSchema>

export const CloudConfigSchema = Type.Object(
  {
    listen: Type.Object({ host: Type.String(), port: Type.Integer({ minimum: 0, maximum: 65535 }) }, { additionalProperties: false }),
    store: Type.Union([
      Type.Object({ type: Type.Literal('sqlite'), path: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
      Type.Object(
        {
          type: Type.Literal('influx'),
          url: Type.String({ pattern: '^https?://' }),
          database: Ident,
          /** InfluxQL durations (docs/influxdb.md): raw points (default 90d), hourly rollups and the audit trail (default 1825d). */
          rawRetention: Type.Optional(Type.String({ pattern: '^(INF|[0-9]+[hdw])$' })),
          longTermRetention: Type.Optional(Type.String({ pattern: '^(INF|[0-9]+[hdw])$' })),
          /** Let start-up shorten an existing raw policy (older readings are rolled up first). Off: it only warns. */
          shortenRetention: Type.Optional(Type.Boolean()),
        },
        { additionalProperties: false },
      ),
    ]),
    /** The gateways allowed to ingest, each bound to its office. Tokens are kept only as hashes. */
    gateways: Type.Array(Type.Object({ id: Ident, office: Ident, tokenHash: TokenHash }, { additionalProperties: false })),
    /** The center's own state: people, tokens, gateways seen, alert and incident lifecycle, live feed. */
    center: Type.Object({ path: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
    organization: Type.Object({ districts: Type.Array(District) }, { additionalProperties: false }),
    users: Type.Array(UserSchema),
    reads: Type.Object(
      {
        /** Lab and demo only: anyone may read (not act) without a token, as an admin sees. Logged as a warning. */
        open: Type.Boolean(),
      },
      { additionalProperties: false },
    ),
    /** Where an alert or incident can be dispatched. */
    departments: Type.Array(Type.Object({ id: Ident, name: Name }, { additionalProperties: false }), { minItems: 1 }),
    escalation: Type.Object(
      {
        /** Minutes an alert may wait for acknowledgement at each level, by severity; incidents use `major`. */
        ackMinutes: Type.Object(
          Object.fromEntries(Severities.map((s) => [s, Type.Number({ exclusiveMinimum: 0 })])) as Record<(typeof Severities)[number], ReturnType<typeof Type.Number>>,
          { additionalProperties: false },
        ),
        /** How often the SLA is checked. */
        checkSeconds: Type.Number({ minimum: 0.05 }),
      },
      { additionalProperties: false },
    ),
    sessions: Type.Object({ ttlHours: Type.Number({ exclusiveMinimum: 0, maximum: 720 }) }, { additionalProperties: false }),
    limits: Type.Object(
      {
        /** Ingest requests per gateway per minute; 0 turns the limit off. */
        ingestPerGatewayPerMinute: Type.Integer({ minimum: 0 }),
        /** Requests per address per minute for everything else (sign-in included); 0 turns it off. */
        requestsPerAddressPerMinute: Type.Integer({ minimum: 0 }),
        /** Under-pressure: refuse with 503 beyond this event-loop delay (ms) or heap (MB); 0 is off. */
        maxEventLoopDelayMs: Type.Number({ minimum: 0 }),
        maxHeapUsedMb: Type.Number({ minimum: 0 }),
      },
      { additionalProperties: false },
    ),
    /** Largest ingest body after decompression. A full 2,000-envelope batch is well under 2 MB. */
    bodyLimitBytes: Type.Integer({ minimum: 1024 }),
  },
  { additionalProperties: false },
)
export type CloudConfig = Static<typeof CloudConfigSchema>

const base = {
  listen: { host: '127.0.0.1', port: 8080 },
  store: { type: 'sqlite', path: 'var/cloud/events.db' },
  gateways: [],
  center: { path: 'var/cloud/center.db' },
  organization: { districts: [] },
  users: [],
  reads: { open: false },
  bodyLimitBytes: 4 * 1024 * 1024,
  departments: [
    { id: 'city-management', name: '城市管理 City management' },
    { id: 'hotline-12345', name: '12345 热线 12345 hotline' },
    { id: 'police', name: '公安 Police' },
    { id: 'fire', name: '消防 Fire and rescue' },
    { id: 'work-safety', name: '安全生产 Work safety' },
    { id: 'environment', name: '生态环境 Environment' },
  ],
  escalation: { ackMinutes: { critical: 5, major: 15, minor: 60 }, checkSeconds: 15 },
  sessions: { ttlHours: 12 },
  // A gateway sends a few batches a second, more while a backlog drains and alerts go one by one.
  limits: { ingestPerGatewayPerMinute: 6000, requestsPerAddressPerMinute: 3000, maxEventLoopDelayMs: 1000, maxHeapUsedMb: 0 },
}

/**
 * The demo district: the demo street office's enterprises and patrol routes, read from the demo
 * gateway's own config (gateway/config/demo-office.yaml) so the two cannot disagree.
 */
function demoOrganization() {
  type Threshold = { unit?: string; low?: number; high?: number }
  const office = readConfigFile(DEMO_CONFIG_PATH) as {
    office: { id: string; name: string; utcOffsetMinutes: number }
    enterprises: { id: string; name: string; thresholds?: Record<string, Threshold> }[]
    routes: unknown[]
    thresholds: Record<string, Threshold>
    checkpoints: { id: string; name: string }[]
  }
  const levels = (t: Record<string, Threshold> | undefined) =>
    Object.fromEntries(
      Object.entries(t ?? {}).map(([q, v]) => [q, { ...(v.unit ? { unit: v.unit } : {}), ...(v.low !== undefined ? { warning: v.low } : {}), ...(v.high !== undefined ? { alarm: v.high } : {}) }]),
    )
  return {
    districts: [
      {
        id: 'pukou',
        name: '浦口区 (demo)',
        offices: [
          {
            id: office.office.id,
            name: office.office.name,
            utcOffsetMinutes: office.office.utcOffsetMinutes,
            enterprises: office.enterprises.map((e) => ({ id: e.id, name: e.name, ...(e.thresholds ? { levels: levels(e.thresholds) } : {}) })),
            routes: office.routes,
            levels: levels(office.thresholds),
            checkpoints: office.checkpoints.map((c) => ({ id: c.id, name: c.name })),
          },
        ],
      },
    ],
  }
}

/** The demo center: one known gateway, open reads. Never for production. */
export const demoCloudConfig = () => ({
  ...base,
  store: { type: 'sqlite', path: 'var/cloud-demo/events.db' },
  center: { path: 'var/cloud-demo/center.db' },
  organization: demoOrganization(),
  gateways: [{ id: 'gw-tangquan-01', office: 'tangquan', tokenHash: hashToken(DEMO_GATEWAY_TOKEN) }],
  reads: { open: true },
  // Demo passwords are hashed when the demo config is built (scrypt at start, about 50 ms each).
  users: [
    { name: 'demo-viewer', role: 'admin', scope: {}, tokenHashes: [hashToken(DEMO_VIEWER_TOKEN)] },
  ] as UserConfig[],
})

export function loadCloudConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env, overrides?: unknown): CloudConfig {
  const file = path ? readConfigFile(path) : undefined
  let merged: unknown = file !== undefined ? deepMerge(base, file) : demoCloudConfig()
  // A store section is one choice (sqlite or influx): the file's replaces the default whole, so
  // an influx section does not inherit the default's sqlite `path`.
  const fileStore = isRecord(file) && isRecord(file.store) ? file.store : undefined
  if (fileStore) merged = { ...(merged as object), store: fileStore }
  const fromEnv: Record<string, unknown> = {}
  if (env.PORT || env.HOST) {
    fromEnv.listen = { ...(env.PORT ? { port: Number(env.PORT) } : {}), ...(env.HOST ? { host: env.HOST } : {}) }
  }
  const store = envStore((merged as { store?: unknown }).store, env)
  if (env.CENTER_DB) fromEnv.center = { path: env.CENTER_DB }
  merged = deepMerge(merged, fromEnv)
  if (store !== undefined) merged = { ...(merged as object), store }
  if (overrides !== undefined) merged = deepMerge(merged, overrides)
  // The same for a caller's (a test's, a benchmark's) store: it replaces, it does not mix.
  const overridden = (overrides as { store?: unknown } | undefined)?.store
  if (overridden !== undefined) merged = { ...(merged as object), store: overridden }
  const source = path ?? 'built-in demo config'
  const config = checkConfig<CloudConfig>(CloudConfigSchema, merged, source)
  const problems = referenceProblems(config)
  if (problems.length > 0) throw new ConfigError(source, problems.slice(0, 20))
  return config
}

/**
 * What the schema cannot see: ids unique where scoping looks them up, and every reference to a
 * district, office or enterprise one the organization has. An office id in two districts would be
 * seen by the staff of both; an enterprise in two offices would put its inspector in whichever
 * came last; a gateway of an unknown office ingests data nobody's scope covers.
 */
export function referenceProblems(config: CloudConfig): SchemaProblem[] {
  const problems: SchemaProblem[] = []
  const first = new Map<string, string>()
  const unique = (kind: string, id: string, path: string) => {
    const earlier = first.get(`${kind}\u0000${id}`)
    // A token hash is no secret, but it says nothing to a reader either.
    const named = kind.endsWith('token') ? `the same ${kind}` : `${kind} "${id}"`
    if (earlier !== undefined) problems.push({ path, message: `${named} is already declared at ${earlier}` })
    else first.set(`${kind}\u0000${id}`, path)
  }
  const offices = new Set<string>()
  const enterprises = new Set<string>()
  config.organization.districts.forEach((d, di) => {
    unique('district', d.id, `/organization/districts/${di}/id`)
    d.offices.forEach((o, oi) => {
      const at = `/organization/districts/${di}/offices/${oi}`
      unique('office', o.id, `${at}/id`)
      offices.add(o.id)
      o.enterprises.forEach((e, ei) => {
        unique('enterprise', e.id, `${at}/enterprises/${ei}/id`)
        enterprises.add(e.id)
      })
    })
  })
  const districts = new Set(config.organization.districts.map((d) => d.id))
  config.gateways.forEach((g, i) => {
    unique('gateway', g.id, `/gateways/${i}/id`)
    unique('gateway token', g.tokenHash, `/gateways/${i}/tokenHash`)
    if (!offices.has(g.office)) problems.push({ path: `/gateways/${i}/office`, message: `no office "${g.office}" in /organization` })
  })
  config.users.forEach((u, i) => {
    unique('user', u.name, `/users/${i}/name`)
    for (const [j, h] of (u.tokenHashes ?? []).entries()) unique('user token', h, `/users/${i}/tokenHashes/${j}`)
    const at = `/users/${i}/scope`
    if (u.role === 'center' && (u.scope.district === undefined || !districts.has(u.scope.district))) {
      problems.push({ path: `${at}/district`, message: u.scope.district === undefined ? 'center staff need a district' : `no district "${u.scope.district}" in /organization` })
    }
    if (u.role === 'supervisor') {
      if (!u.scope.offices?.length) problems.push({ path: `${at}/offices`, message: 'supervisors need at least one office' })
      for (const o of u.scope.offices ?? []) if (!offices.has(o)) problems.push({ path: `${at}/offices`, message: `no office "${o}" in /organization` })
    }
    if (u.role === 'inspector') {
      if (!u.scope.enterprises?.length) problems.push({ path: `${at}/enterprises`, message: 'inspectors need at least one enterprise' })
      for (const e of u.scope.enterprises ?? []) if (!enterprises.has(e)) problems.push({ path: `${at}/enterprises`, message: `no enterprise "${e}" in /organization` })
    }
  })
  const tokenOwners = new Map<string, string>()
  for (const [i, g] of config.gateways.entries()) tokenOwners.set(g.tokenHash, `/gateways/${i}/tokenHash`)
  config.users.forEach((u, i) =>
    (u.tokenHashes ?? []).forEach((h, j) => {
      const gateway = tokenOwners.get(h)
      if (gateway !== undefined) problems.push({ path: `/users/${i}/tokenHashes/${j}`, message: `the same token as the gateway at ${gateway}` })
    }),
  )
  return problems
}

/**
 * The store after the environment: STORE picks the kind; INFLUX_URL, INFLUX_DB and SQLITE_PATH
 * set those keys of the configured section when it is of that kind, and keep the rest of it (an
 * influx section's database and retention stay as the file says). A STORE of the other kind
 * starts a section of its own, from its variables and defaults. Undefined: nothing to change.
 */
function envStore(configured: unknown, env: NodeJS.ProcessEnv): Record<string, unknown> | undefined {
  if (env.STORE !== undefined && env.STORE !== 'sqlite' && env.STORE !== 'influx') {
    throw new ConfigError('environment', [{ path: 'STORE', message: `must be "sqlite" or "influx", not "${env.STORE}"` }])
  }
  const current = isRecord(configured) ? configured : {}
  const type = env.STORE ?? current.type
  const same = current.type === type ? current : undefined
  if (type === 'influx') {
    if (same && env.INFLUX_URL === undefined && env.INFLUX_DB === undefined) return undefined
    return {
      ...(same ?? { type, url: 'http://127.0.0.1:8086', database: 'gridwatch' }),
      ...(env.INFLUX_URL !== undefined ? { url: env.INFLUX_URL } : {}),
      ...(env.INFLUX_DB !== undefined ? { database: env.INFLUX_DB } : {}),
    }
  }
  if (type === 'sqlite') {
    if (same && env.SQLITE_PATH === undefined) return undefined
    return { ...(same ?? { type, path: 'var/cloud/events.db' }), ...(env.SQLITE_PATH !== undefined ? { path: env.SQLITE_PATH } : {}) }
  }
  return undefined
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
