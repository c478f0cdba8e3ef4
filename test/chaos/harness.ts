/**
 * What the chaos scenarios are made of: the gateway and the cloud API as real processes that can
 * be killed and restarted on the same ports and data, a device fleet that keeps publishing QoS 1
 * through it all and remembers exactly which messages were acknowledged, and the checks against
 * what reached the center's store.
 *
 * Used by test/chaos/chaos.test.ts (short, in CI) and bench/chaos.ts (`npm run chaos`, full).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import mqtt, { type MqttClient } from 'mqtt'
import { stringify } from 'yaml'
import { deepMerge, readConfigFile } from '../../common/config-file.ts'
import { freePort } from '../../common/ports.ts'
import { DEMO_GATEWAY_TOKEN, demoDevicePassword } from '../../devices/demo-credentials.ts'
import { DEMO_CONFIG_PATH } from '../../gateway/config/load.ts'
import { startProcess, type Child } from '../../bench/lib/proc.ts'
import { gatewayEnv, gatewayNodeFlags } from '../../bench/lib/runtime.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))

/** `source` runs the TypeScript through tsx (tests); `dist` runs the production bundles (npm run chaos). */
export type Build = 'source' | 'dist'

function nodeArgs(build: Build, deployable: 'gateway' | 'cloud-api'): string[] {
  if (build === 'dist') {
    const bundle = join(root, 'dist', `${deployable}.mjs`)
    if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run npm run build`)
    return deployable === 'gateway' ? [...gatewayNodeFlags(), bundle] : [bundle]
  }
  return ['--import', 'tsx', join(root, deployable, 'main.ts')]
}

export async function waitUntil<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      const v = await probe()
      if (v !== undefined) return v
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function ready(url: string): Promise<true | undefined> {
  return (await fetch(url)).ok ? true : undefined
}

/** A service that can be killed and brought back on the same ports and data. */
abstract class Restartable {
  child: Child | undefined
  protected abstract spawn(): Child
  protected abstract readyUrl(): string

  async start(): Promise<void> {
    this.child = this.spawn()
    const child = this.child
    await waitUntil(
      async () => {
        if (child.proc.exitCode !== null) throw new Error(`exited early: ${child.output().slice(-2000)}`)
        return ready(this.readyUrl())
      },
      60_000,
      this.readyUrl(),
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${child.output().slice(-3000)}`)
    })
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.child?.stop(signal)
    this.child = undefined
  }
}

export class CloudProcess extends Restartable {
  readonly dir = mkdtempSync(join(tmpdir(), 'gridwatch-chaos-cloud-'))
  readonly dbPath = join(this.dir, 'events.db')

  constructor(
    private readonly build: Build,
    readonly port: number,
    private readonly storeEnv: Record<string, string> = {},
  ) {
    super()
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  protected readyUrl(): string {
    return `${this.url}/healthz`
  }

  protected spawn(): Child {
    // The built-in demo config: it knows the demo gateway's token and allows reads.
    return startProcess(process.execPath, nodeArgs(this.build, 'cloud-api'), {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: 'warn', PORT: String(this.port), STORE: 'sqlite', SQLITE_PATH: this.dbPath, ...this.storeEnv },
    })
  }

  async metric(name: string): Promise<number> {
    const text = await (await fetch(`${this.url}/metrics`)).text()
    let sum = 0
    for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.split(' ').pop())
    return sum
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true })
  }
}

export class GatewayProcess extends Restartable {
  readonly dir = mkdtempSync(join(tmpdir(), 'gridwatch-chaos-gw-'))
  private readonly configPath = join(this.dir, 'office.yaml')

  constructor(
    private readonly build: Build,
    readonly mqttPort: number,
    readonly httpPort: number,
    cloudUrl: string,
    overrides: Record<string, unknown> = {},
  ) {
    super()
    const config = deepMerge(readConfigFile(DEMO_CONFIG_PATH), {
      gateway: { dataDir: join(this.dir, 'data') },
      broker: { tcp: { host: '127.0.0.1', port: mqttPort } },
      http: { host: '127.0.0.1', port: httpPort },
      uplink: { url: cloudUrl, token: DEMO_GATEWAY_TOKEN },
      // The scenarios count messages end to end: every reading and every scan must travel
      // (report by exception and double-scan suppression have their own tests).
      reduction: { deadband: { gas: 0 } },
      patrol: { doubleScanSeconds: 0 },
      // The quota scenario raises an alarm every hundred messages, far beyond a storm.
      storm: { maxAlerts: 1_000_000 },
      ...overrides,
    })
    writeFileSync(this.configPath, stringify(config))
  }

  protected readyUrl(): string {
    return `http://127.0.0.1:${this.httpPort}/readyz`
  }

  protected spawn(): Child {
    return startProcess(process.execPath, [...nodeArgs(this.build, 'gateway'), '--config', this.configPath], {
      cwd: root,
      env: { ...process.env, ...(this.build === 'dist' ? gatewayEnv() : {}), LOG_LEVEL: 'warn', GRIDWATCH_DRAIN_MS: '0' },
    })
  }

  async health(): Promise<{ outbox: { pending: Record<string, number> }; uplink: { up: boolean } }> {
    return (await (await fetch(`http://127.0.0.1:${this.httpPort}/healthz`)).json()) as never
  }

  async pending(): Promise<number> {
    const h = await this.health()
    return Object.values(h.outbox.pending).reduce((a, b) => a + b, 0)
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true })
  }
}

export interface FleetOptions {
  mqttPort: number
  /** Devices from the demo office, and how many MQTT connections each gets. */
  clients: Record<string, number>
  /** Messages per second across the fleet; 0 for as fast as the window allows. */
  rate: number
  /** Unacknowledged messages per client at most. */
  window: number
  /** Stop after this many messages in total (Infinity: until stop()). */
  total: number
  /** What each message is. Values must identify the message: the checks find them by value. */
  message?: (value: number, device: string) => { kind: 'reading' | 'scan' | 'camera' | 'report'; body: object }
}

/**
 * Simulated devices publishing QoS 1 with MQTT.js, reconnecting on their own. Message i carries
 * value i; `acked` holds the values whose PUBACK arrived, which is the promise under test.
 */
export class Fleet {
  readonly acked = new Set<number>()
  readonly ackedBy = new Map<string, number[]>()
  /** Publishes MQTT.js failed (callback with an error), by message; each is sent again. */
  readonly publishErrors = new Map<string, number>()
  sent = 0
  /** Values whose publish failed, to send again, as a device resends what was not acknowledged. */
  private readonly retry = new Map<string, number[]>()
  private clients: { client: MqttClient; device: string; inFlight: number }[] = []
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private startedAt = 0

  constructor(private readonly o: FleetOptions) {}

  async start(): Promise<void> {
    for (const [device, n] of Object.entries(this.o.clients)) {
      for (let i = 0; i < n; i++) {
        const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${this.o.mqttPort}`, {
          clientId: `chaos-${device}-${i}`,
          username: device,
          password: demoDevicePassword(device),
          reconnectPeriod: 200,
          connectTimeout: 5000,
          protocolVersion: 4,
        })
        // Reconnect errors while the gateway is down are the scenario, not a failure.
        client.on('error', () => {})
        this.clients.push({ client, device, inFlight: 0 })
      }
    }
    this.startedAt = performance.now()
    this.timer = setInterval(() => this.tick(), 10)
  }

  private tick(): void {
    const due = this.o.rate > 0 ? Math.floor(((performance.now() - this.startedAt) / 1000) * this.o.rate) : Infinity
    let progressed = true
    while (progressed && this.sent < due && this.sent < this.o.total && !this.stopped) {
      progressed = false
      for (const c of this.clients) {
        if (this.sent >= due || this.sent >= this.o.total) break
        // A disconnected MQTT.js client queues the publish and sends it after reconnecting.
        if (c.inFlight >= this.o.window) continue
        this.publish(c, this.sent++)
        progressed = true
      }
    }
    for (const c of this.clients) {
      const again = this.retry.get(c.device)
      while (!this.stopped && again && again.length > 0 && c.inFlight < this.o.window) this.publish(c, again.shift()!)
    }
  }

  private publish(c: { client: MqttClient; device: string; inFlight: number }, value: number): void {
    const m = this.o.message?.(value, c.device) ?? { kind: 'reading' as const, body: { ts: Date.now(), quantity: 'gas', value, unit: '%LEL' } }
    c.inFlight++
    c.client.publish(`dev/${c.device}/${m.kind}`, JSON.stringify(m.body), { qos: 1 }, (err) => {
      c.inFlight--
      if (err) {
        this.publishErrors.set(err.message, (this.publishErrors.get(err.message) ?? 0) + 1)
        let list = this.retry.get(c.device)
        if (!list) this.retry.set(c.device, (list = []))
        list.push(value)
        return
      }
      this.acked.add(value)
      let list = this.ackedBy.get(c.device)
      if (!list) this.ackedBy.set(c.device, (list = []))
      list.push(value)
    })
  }

  /** Resolves once `total` messages are sent and every one of them acknowledged. */
  async finished(timeoutMs: number): Promise<void> {
    await waitUntil(async () => (this.sent >= this.o.total && this.acked.size >= this.o.total ? true : undefined), timeoutMs, 'every message acknowledged').catch(
      (err: Error) => {
        throw new Error(`${err.message}: ${this.describe()}`)
      },
    )
  }

  describe(): string {
    const clients = this.clients.map((c) => `${c.client.options.clientId}: connected=${c.client.connected} inFlight=${c.inFlight}`).join('; ')
    return `sent ${this.sent}, acked ${this.acked.size}, publish errors ${JSON.stringify(Object.fromEntries(this.publishErrors))}; ${clients}`
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    await Promise.all(this.clients.map((c) => c.client.endAsync(true)))
  }
}

/** What the center's SQLite store holds, read with a separate read-only connection. */
export function storedReadings(dbPath: string): { device: string; value: number; seq: number }[] {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true })
  try {
    // rowid order is arrival order at the center.
    return (db.prepare("SELECT device, body FROM envelopes WHERE kind = 'reading' ORDER BY rowid").all() as { device: string; body: string }[]).map((r) => {
      const e = JSON.parse(r.body) as { seq: number; payload: { value: number } }
      return { device: r.device, value: e.payload.value, seq: e.seq }
    })
  } finally {
    db.close()
  }
}

export interface ScenarioResult {
  name: string
  sent: number
  acked: number
  delivered: number
  lost: number
  duplicates_in_store: number
  [extra: string]: unknown
}

/** Lost: acknowledged but not stored. Duplicates: stored more than once. Delivered: distinct stored. */
export function account(name: string, fleet: Fleet, values: number[]): ScenarioResult {
  const counts = new Map<number, number>()
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1)
  let duplicates = 0
  for (const n of counts.values()) if (n > 1) duplicates += n - 1
  let lost = 0
  for (const v of fleet.acked) if (!counts.has(v)) lost++
  return {
    name,
    sent: fleet.sent,
    acked: fleet.acked.size,
    delivered: counts.size,
    lost,
    duplicates_in_store: duplicates,
    // MQTT.js failing a publish (e.g. "Connection closed" while it was queued offline); the
    // simulated device sends it again, as a real one resends what was never acknowledged.
    device_resends: Object.fromEntries(fleet.publishErrors),
  }
}

/** Per device, the center received envelopes in sequence order. */
export function inDeviceOrder(rows: { device: string; seq: number }[]): boolean {
  const last = new Map<string, number>()
  for (const r of rows) {
    if ((last.get(r.device) ?? 0) > r.seq) return false
    last.set(r.device, r.seq)
  }
  return true
}

export async function ports(n: number): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push(await freePort())
  return out
}
