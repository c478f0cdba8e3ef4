/**
 * Real servers for integration and end-to-end tests, on free ports, torn down afterwards.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { buildApp } from '../../cloud-api/app.ts'
import { loadCloudConfig, type CloudConfig } from '../../cloud-api/config.ts'
import { SqliteStore } from '../../cloud-api/store/sqlite-store.ts'
import type { EventStore } from '../../cloud-api/store/store.ts'
import { createLogger, silentLogger, type Logger } from '../../common/logger.ts'
import { hashToken } from '../../common/secrets.ts'
import { demoDevicePassword } from '../../devices/demo-credentials.ts'
import { Gateway } from '../../gateway/gateway.ts'
import type { GatewayConfig } from '../../gateway/config/schema.ts'
import { testOfficeConfig } from './office.ts'
import { removeTestDir } from './temp.ts'

export const TEST_GATEWAY_TOKEN = 'test-gateway-token-0123456789abcdef'
export const TEST_READER_TOKEN = 'test-reader-token-0123456789abcdef'

export interface RunningCloud {
  url: string
  app: FastifyInstance
  store: EventStore
  close(): Promise<void>
}

export async function startCloud(options: { store?: EventStore; port?: number; logger?: Logger; overrides?: Record<string, unknown> } = {}): Promise<RunningCloud> {
  const ownDir = options.store ? undefined : mkdtempSync(join(tmpdir(), 'gridwatch-cloud-'))
  const store = options.store ?? new SqliteStore(join(ownDir!, 'events.db'))
  const config: CloudConfig = loadCloudConfig(undefined, {}, {
    gateways: [{ id: 'gw-tangquan-01', office: 'tangquan', tokenHash: hashToken(TEST_GATEWAY_TOKEN) }],
    users: [{ name: 'tests', role: 'admin', scope: {}, tokenHashes: [hashToken(TEST_READER_TOKEN)] }],
    reads: { open: false },
    center: { path: ':memory:' },
    ...options.overrides,
  })
  await store.open()
  const app = await buildApp({ config, store, logger: options.logger ?? silentLogger() })
  await app.listen({ host: '127.0.0.1', port: options.port ?? 0 })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}`,
    app,
    store,
    async close() {
      await app.close()
      await store.close()
      if (ownDir) removeTestDir(ownDir)
    },
  }
}

/** GET with the test reader token; returns parsed JSON. */
export async function readJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${TEST_READER_TOKEN}` } })
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`)
  return (await res.json()) as T
}

export async function startGateway(
  options: { uplinkUrl?: string; dataDir?: string; logger?: Logger; overrides?: Record<string, unknown> } = {},
): Promise<Gateway> {
  const config: GatewayConfig = testOfficeConfig({
    uplink: { url: options.uplinkUrl ?? 'http://127.0.0.1:9', lingerMs: 20, token: TEST_GATEWAY_TOKEN },
    ...(options.dataDir ? { gateway: { dataDir: options.dataDir } } : {}),
    ...options.overrides,
  })
  return Gateway.start(config, { logger: options.logger ?? silentLogger(), processMetrics: false })
}

/** An MQTT.js client logged in as a demo device. */
export function connectDevice(port: number, deviceId: string, extra: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    clientId: `${deviceId}-${Math.random().toString(16).slice(2, 8)}`,
    username: deviceId,
    password: demoDevicePassword(deviceId),
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...extra,
  })
}

/** A logger whose lines the test can read back (to check codes, and that no secret leaks). */
export function capturingLogger(service = 'test'): { logger: Logger; lines: string[] } {
  const lines: string[] = []
  const logger = createLogger({ service, level: 'debug', destination: { write: (s: string) => void lines.push(s) } })
  return { logger, lines }
}
