/** A standalone GridWatch broker in the test process, with a small office's devices registered. */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { brokerDefaults, type BrokerSettings } from '../../broker/config.ts'
import { QueueJournal } from '../../broker/queue-journal.ts'
import { startStandalone, type StandaloneBroker, type StandaloneConfig } from '../../broker/standalone.ts'
import { deepMerge } from '../../common/config-file.ts'
import { silentLogger, type Logger } from '../../common/logger.ts'
import { hashPassword } from '../../common/secrets.ts'

export const passwordOf = (id: string) => `pw-${id}-0123456789`
/** Devices with passwords; `cam-009` has none and logs in by client certificate only. */
export const PASSWORD_DEVICES = ['gas-001', 'gas-002', 'phone-001']
export const GATEWAY_ID = 'gw-test'

let devicesCache: StandaloneConfig['devices'] | undefined
async function devices(): Promise<StandaloneConfig['devices']> {
  devicesCache ??= [
    ...(await Promise.all(PASSWORD_DEVICES.map(async (id) => ({ id, secret: await hashPassword(passwordOf(id)) })))),
    { id: 'cam-009' },
    { id: GATEWAY_ID, secret: await hashPassword(passwordOf(GATEWAY_ID)), role: 'gateway' as const },
  ]
  return devicesCache
}

export async function startTestBroker(
  options: { settings?: Record<string, unknown>; logger?: Logger; id?: string; http?: StandaloneConfig['http'] } = {},
): Promise<StandaloneBroker & { settings: BrokerSettings }> {
  const settings = deepMerge(
    {
      ...brokerDefaults,
      // Every test client comes from 127.0.0.1; the connect-rate limit has its own test.
      limits: { ...brokerDefaults.limits, connectsPerSecondPerAddress: 10_000 },
      tcp: { host: '127.0.0.1', port: 0 },
      persistence: { path: join(mkdtempSync(join(tmpdir(), 'gw-broker-')), 'broker.db'), synchronous: 'normal' },
    },
    options.settings ?? {},
  ) as BrokerSettings
  const config: StandaloneConfig = { id: options.id ?? 'test-broker', broker: settings, devices: await devices(), http: options.http ?? null }
  const running = await startStandalone(config, options.logger ?? silentLogger())
  return Object.assign(running, { settings })
}

/**
 * An MQTT.js client logged in with a device's password over `url`. Rejects when the broker closes
 * the connection before CONNACK (a protection refusing it), which connectAsync would not.
 */
export function connectAs(url: string, id: string | undefined, extra: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, {
    clientId: `${id ?? 'anon'}-${Math.random().toString(16).slice(2, 8)}`,
    ...(id ? { username: id, password: passwordOf(id) } : {}),
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...extra,
  })
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      client.off('connect', ok)
      client.end(true)
      reject(err)
    }
    const closed = () => fail(new Error('connection closed before CONNACK'))
    const ok = () => {
      client.off('error', fail)
      client.off('close', closed)
      resolve(client)
    }
    client.once('connect', ok)
    client.once('error', fail)
    client.once('close', closed)
  })
}

/** A counter of the broker's metrics with exactly these labels (`name{labels} n`), or 0. */
export async function brokerMetric(broker: StandaloneBroker, name: string, labels: string): Promise<number> {
  const m = new RegExp(`^${name}\\{${labels.replace(/[{}]/g, '\\$&')}\\} (\\d+)`, 'm').exec(await broker.metrics.metrics())
  return m ? Number(m[1]) : 0
}

/**
 * The queued messages a broker's persistence holds on disk for `clientId`, as a restart would find
 * them: rows of the queue journal (broker/queue-journal.ts) and rows left in the `outgoing` table
 * by versions before it. Read-only, so it may look at a running broker's files.
 */
export function queuedOnDisk(dbPath: string, clientId: string): { payload: Buffer; messageId: number | null }[] {
  const db = new Database(dbPath, { readonly: true })
  try {
    const table = db.prepare('SELECT payload, message_id AS messageId FROM outgoing WHERE client_id = ? ORDER BY seq').all(clientId) as { payload: Buffer; messageId: number | null }[]
    const journal = [...new QueueJournal(`${dbPath}.queue`, { readOnly: true }).live()].filter((r) => r.clientId === clientId)
    return [...table, ...journal.map((r) => ({ payload: r.payload, messageId: r.messageId }))]
  } finally {
    db.close()
  }
}
