/**
 * cloud-api configuration: a YAML/JSON file (`--config`, or GRIDWATCH_CLOUD_CONFIG), then
 * environment overrides. With neither, the built-in demo config runs, with a warning.
 *
 * Environment: PORT, HOST, STORE=sqlite|influx, SQLITE_PATH, INFLUX_URL, INFLUX_DB.
 */
import Type, { type Static } from 'typebox'
import { Ident } from '../contracts/envelope.ts'
import { ConfigError, checkConfig, deepMerge, readConfigFile } from '../common/config-file.ts'
import { hashToken } from '../common/secrets.ts'
import { DEMO_GATEWAY_TOKEN, DEMO_VIEWER_TOKEN } from '../devices/demo-credentials.ts'

const TokenHash = Type.String({ pattern: '^sha256\\$[A-Za-z0-9_-]{43}$' })

export const CloudConfigSchema = Type.Object(
  {
    listen: Type.Object({ host: Type.String(), port: Type.Integer({ minimum: 0, maximum: 65535 }) }, { additionalProperties: false }),
    store: Type.Union([
      Type.Object({ type: Type.Literal('sqlite'), path: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
      Type.Object(
        { type: Type.Literal('influx'), url: Type.String({ pattern: '^https?://' }), database: Ident },
        { additionalProperties: false },
      ),
    ]),
    /** The gateways allowed to ingest, each bound to its office. Tokens are kept only as hashes. */
    gateways: Type.Array(Type.Object({ id: Ident, office: Ident, tokenHash: TokenHash }, { additionalProperties: false })),
    reads: Type.Object(
      {
        /** Lab and demo only: anyone may read alerts and series without a token. Logged as a warning. */
        open: Type.Boolean(),
        tokens: Type.Array(Type.Object({ name: Ident, tokenHash: TokenHash }, { additionalProperties: false })),
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
  reads: { open: false, tokens: [] },
  bodyLimitBytes: 4 * 1024 * 1024,
}

/** The demo center: one known gateway, open reads. Never for production. */
export const demoCloudConfig = {
  ...base,
  store: { type: 'sqlite', path: 'var/cloud-demo/events.db' },
  gateways: [{ id: 'gw-tangquan-01', office: 'tangquan', tokenHash: hashToken(DEMO_GATEWAY_TOKEN) }],
  reads: { open: true, tokens: [{ name: 'demo-viewer', tokenHash: hashToken(DEMO_VIEWER_TOKEN) }] },
}

export function loadCloudConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env, overrides?: unknown): CloudConfig {
  let merged: unknown = path ? deepMerge(base, readConfigFile(path)) : demoCloudConfig
  const fromEnv: Record<string, unknown> = {}
  if (env.PORT || env.HOST) {
    fromEnv.listen = { ...(env.PORT ? { port: Number(env.PORT) } : {}), ...(env.HOST ? { host: env.HOST } : {}) }
  }
  if (env.STORE === 'influx') {
    fromEnv.store = { type: 'influx', url: env.INFLUX_URL ?? 'http://127.0.0.1:8086', database: env.INFLUX_DB ?? 'gridwatch' }
  } else if (env.STORE === 'sqlite') {
    fromEnv.store = { type: 'sqlite', path: env.SQLITE_PATH ?? 'var/cloud/events.db' }
  } else if (env.STORE !== undefined) {
    throw new ConfigError('environment', [{ path: 'STORE', message: `must be "sqlite" or "influx", not "${env.STORE}"` }])
  }
  merged = deepMerge(merged, fromEnv)
  if (overrides !== undefined) merged = deepMerge(merged, overrides)
  // A store section is one choice (sqlite or influx), so a later one replaces an earlier whole
  // instead of mixing their keys.
  const store = (overrides as { store?: unknown } | undefined)?.store ?? fromEnv.store
  if (store !== undefined) merged = { ...(merged as object), store }
  return checkConfig<CloudConfig>(CloudConfigSchema, merged, path ?? 'built-in demo config')
}
