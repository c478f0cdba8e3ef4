/**
 * What the chaos scenarios are made of, besides the processes (bench/lib/stack.ts): a device
 * fleet that keeps publishing QoS 1 through it all and remembers exactly which messages were
 * acknowledged, and the checks against what reached the center's store.
 *
 * Used by test/chaos/chaos.test.ts (short, in CI) and bench/chaos.ts (`npm run chaos`, full).
 */
import Database from 'better-sqlite3'
import mqtt, { type MqttClient } from 'mqtt'
import { demoDevicePassword } from '../../devices/demo-credentials.ts'
import { waitUntil } from '../../bench/lib/stack.ts'

export { CloudProcess, GatewayProcess, ports, waitUntil, type Build } from '../../bench/lib/stack.ts'

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

  /**
   * Stops publishing, then waits for the PUBACKs of what is in flight before closing: a message
   * the gateway committed but whose PUBACK the fleet never waited for would count as delivered
   * and not acknowledged. Forced after `drainMs` (a gateway that is down never answers).
   */
  async stop(drainMs = 15_000): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    await waitUntil(async () => (this.clients.every((c) => c.inFlight === 0) ? true : undefined), drainMs, 'in-flight PUBACKs').catch(() => undefined)
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
