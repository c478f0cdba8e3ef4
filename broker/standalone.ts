/**
 * The broker on its own (see broker/main.ts). Its config file holds a `broker:` section (broker/config.ts), the `devices:` allowed to connect (with
 * scrypt secrets, `npm run gateway -- hash-secret`), gateways among them with `role: gateway`,
 * and an optional `http:` endpoint for /healthz and /metrics.
 */
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import Type, { type Static } from 'typebox'
import { collectDefaultMetrics, Registry } from 'prom-client'
import { ConfigError, checkConfig, deepMerge, readConfigFile } from '../common/config-file.ts'
import type { Logger } from '../common/logger.ts'
import { isPasswordHash } from '../common/secrets.ts'
import { BrokerSettings, brokerDefaults } from './config.ts'
import { startBroker, type RunningBroker } from './broker.ts'
import { DeviceRegistry } from './registry.ts'

const StandaloneConfig = Type.Object(
  {
    /** Stable id: persisted sessions and Wills belong to it across restarts. */
    id: Type.String({ minLength: 1, maxLength: 64 }),
    broker: BrokerSettings,
    devices: Type.Array(
      Type.Object(
        {
          id: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' }),
          secret: Type.Optional(Type.String()),
          role: Type.Optional(Type.Union([Type.Literal('device'), Type.Literal('gateway')])),
        },
        { additionalProperties: false },
      ),
    ),
    /** /healthz, /readyz and /metrics; `tls: { cert, key }` serves them over HTTPS. */
    http: Type.Union([
      Type.Object(
        {
          host: Type.String(),
          port: Type.Integer({ minimum: 0, maximum: 65535 }),
          tls: Type.Optional(Type.Object({ cert: Type.String({ minLength: 1 }), key: Type.String({ minLength: 1 }) }, { additionalProperties: false })),
        },
        { additionalProperties: false },
      ),
      Type.Null(),
    ]),
  },
  { additionalProperties: false },
)
export type StandaloneConfig = Static<typeof StandaloneConfig>

export function loadStandaloneConfig(path: string): StandaloneConfig {
  const merged = deepMerge({ id: 'office-broker', broker: brokerDefaults, devices: [], http: null }, readConfigFile(path))
  const config = checkConfig<StandaloneConfig>(StandaloneConfig, merged, path)
  const problems = config.devices.flatMap((d, i) =>
    d.secret !== undefined && !isPasswordHash(d.secret) ? [{ path: `/devices/${i}/secret`, message: 'must be a scrypt hash, not a password' }] : [],
  )
  if (problems.length > 0) throw new ConfigError(path, problems)
  return config
}

export interface StandaloneBroker {
  broker: RunningBroker
  metrics: Registry
  httpPort: number | undefined
  stop(): Promise<void>
}

export async function startStandalone(config: StandaloneConfig, log: Logger): Promise<StandaloneBroker> {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const broker = await startBroker({ id: config.id, settings: config.broker, registry: new DeviceRegistry(config.devices), logger: log, metrics: registry })
  let http: Server | undefined
  if (config.http) {
    const tls = config.http.tls
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      if (req.url === '/metrics') {
        registry.metrics().then((text) => {
          res.writeHead(200, { 'content-type': registry.contentType })
          res.end(text)
        }, () => res.writeHead(500).end())
      } else if (req.url === '/healthz' || req.url === '/readyz') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ status: 'ok', listeners: broker.ports, clients: broker.aedes.connectedClients }))
      } else {
        res.writeHead(404).end()
      }
    }
    const server = tls ? createHttpsServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, handler) : createServer(handler)
    http = server
    await new Promise<void>((resolve) => server.listen(config.http!.port, config.http!.host, resolve))
  }
  return {
    broker,
    metrics: registry,
    httpPort: http ? (http.address() as AddressInfo).port : undefined,
    async stop() {
      await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()))
      await broker.close()
    },
  }
}
