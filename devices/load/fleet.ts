/**
 * A fleet of devices, each with its own MQTT identity, publishing at a set rate per device: what a
 * street office with thousands of sensors and phones looks like to its gateway. Unlike
 * mqtt-load.ts (many connections as one device, for raw broker throughput) every message here is
 * from a distinct device, so per-device state in the gateway (rules, deadbands, ordering) is
 * exercised as in the field.
 *
 * Devices are `{prefix}{n}` (n zero-padded, from 1) with the demo password scheme; `officeYaml()`
 * writes the matching devices for an office config (load-test offices only).
 */
import mqtt, { type MqttClient } from 'mqtt'
import { hashPassword } from '../../common/secrets.ts'
import { deviceTopic, type DeviceKind } from '../../contracts/topics.ts'
import { demoDevicePassword } from '../demo-credentials.ts'

export type LoadKind = Extract<DeviceKind, 'reading' | 'scan' | 'camera'>

export interface FleetOptions {
  url: string
  devices: number
  /** Messages per device per second (fractions allowed: 0.1 is one every 10 s). */
  rate: number
  seconds: number
  qos: 0 | 1
  kinds: LoadKind[]
  prefix?: string
  /** New connections per second: a broker limits connects per address (20/s by default). */
  connectRate?: number
  /** How long devices keep retrying a failed connect before the run counts them as failed (60 s). */
  connectSeconds?: number
  onProgress?: (line: string) => void
}

export interface FleetResult {
  devices: number
  connected: number
  connect_failures: number
  connect_retries: number
  connect_seconds: number
  sent: number
  acked: number
  seconds: number
  msgs_per_s: number
  offered_per_s: number
}

export const fleetDeviceId = (prefix: string, n: number, devices: number) => `${prefix}${String(n).padStart(String(devices).length, '0')}`

/** What a device of the fleet says, by kind: a gas reading, a checkpoint scan, a camera event. */
function message(kind: LoadKind, n: number, sent: number): object {
  const ts = Date.now()
  if (kind === 'reading') return { ts, quantity: 'gas', value: Math.round((3 + ((n + sent) % 40) / 10) * 10) / 10, unit: '%LEL' }
  if (kind === 'scan') return { ts, tag: `04A1B2C3D4E5F${6 + (sent % 4)}`, method: 'nfc' }
  return { ts, event: 'loitering', confidence: 0.3, channel: 1 }
}

export async function runFleet(o: FleetOptions): Promise<FleetResult> {
  const prefix = o.prefix ?? 'load-'
  const connectRate = o.connectRate ?? 20
  const clients: { client: MqttClient; n: number }[] = []
  let failures = 0
  let retries = 0
  // A device whose connect fails (timed out in a login storm, refused by a rate limit) tries again
  // after 1–3 s, as field devices do, until the connect phase ends.
  const connectUntil = performance.now() + (o.connectSeconds ?? 60) * 1000
  const connectOne = (n: number) => {
    const id = fleetDeviceId(prefix, n, o.devices)
    mqtt
      .connectAsync(o.url, { clientId: id, username: id, password: demoDevicePassword(id), reconnectPeriod: 0, connectTimeout: 10_000, protocolVersion: 4 })
      .then(
        (client) => clients.push({ client, n }),
        () => {
          if (performance.now() > connectUntil) return void failures++
          retries++
          setTimeout(() => connectOne(n), 1000 + Math.random() * 2000)
        },
      )
  }
  // Connect at the allowed pace so the broker's per-address limit is honoured.
  const gapMs = 1000 / connectRate
  const startedConnecting = performance.now()
  for (let n = 1; n <= o.devices; n++) {
    const wait = startedConnecting + (n - 1) * gapMs - performance.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    connectOne(n)
    if (n % 500 === 0) o.onProgress?.(`${n}/${o.devices} devices connecting`)
  }
  while (clients.length + failures < o.devices && performance.now() < connectUntil + 12_000) await new Promise((r) => setTimeout(r, 50))
  const connectSeconds = (performance.now() - startedConnecting) / 1000
  o.onProgress?.(`${clients.length}/${o.devices} devices connected in ${connectSeconds.toFixed(1)} s (${retries} retries)`)

  let sent = 0
  let acked = 0
  const t0 = performance.now()
  const deadline = t0 + o.seconds * 1000
  const intervalMs = 1000 / o.rate
  const timers: NodeJS.Timeout[] = []
  await new Promise<void>((resolve) => {
    for (const { client, n } of clients) {
      let own = 0
      const publish = () => {
        if (performance.now() >= deadline) return
        const kind = o.kinds[own % o.kinds.length]
        const id = fleetDeviceId(prefix, n, o.devices)
        sent++
        client.publish(deviceTopic(id, kind), JSON.stringify(message(kind, n, own++)), { qos: o.qos }, (err) => {
          if (!err) acked++
        })
      }
      // Spread the fleet's first messages over one interval, as real devices are not in step.
      const first = setTimeout(() => {
        publish()
        timers.push(setInterval(publish, intervalMs))
      }, Math.random() * intervalMs)
      timers.push(first)
    }
    setTimeout(resolve, o.seconds * 1000)
  })
  for (const t of timers) clearInterval(t)
  // QoS 1 acknowledgements still on their way get a moment to arrive.
  const drain = performance.now() + 5000
  while (o.qos === 1 && acked < sent && performance.now() < drain) await new Promise((r) => setTimeout(r, 20))
  const elapsed = (performance.now() - t0) / 1000
  await Promise.allSettled(clients.map(({ client }) => client.endAsync(true)))
  return {
    devices: o.devices,
    connected: clients.length,
    connect_failures: failures,
    connect_retries: retries,
    connect_seconds: Math.round(connectSeconds * 10) / 10,
    sent,
    acked,
    seconds: Math.round(elapsed * 10) / 10,
    msgs_per_s: Math.round(acked / elapsed),
    offered_per_s: Math.round(clients.length * o.rate),
  }
}

/** The `devices:` entries (YAML) for a load-test office: the fleet with hashed demo passwords. */
export async function officeYaml(devices: number, prefix = 'load-'): Promise<string> {
  const lines = ['# Load-test devices made by `npm run devices -- --office-yaml N`. Not for a real office:', '# the passwords follow the public demo scheme.', 'devices:']
  const ids = Array.from({ length: devices }, (_, i) => fleetDeviceId(prefix, i + 1, devices))
  // scrypt runs on libuv's thread pool: hashing a few at a time uses every thread.
  for (let i = 0; i < ids.length; i += 16) {
    const chunk = ids.slice(i, i + 16)
    const hashes = await Promise.all(chunk.map((id) => hashPassword(demoDevicePassword(id))))
    chunk.forEach((id, j) => lines.push(`  - { id: ${id}, type: gas-detector, secret: '${hashes[j]}' }`))
  }
  return lines.join('\n') + '\n'
}
