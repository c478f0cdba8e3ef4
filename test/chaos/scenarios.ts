/**
 * The four chaos scenarios of the store-and-forward issue. Each returns what it measured; the
 * callers (the CI test and `npm run chaos`) decide what must hold.
 */
import Database from 'better-sqlite3'
import { startInfluxd, type RunningInfluxd } from '../helpers/influxd.ts'
import {
  account,
  CloudProcess,
  Fleet,
  GatewayProcess,
  inDeviceOrder,
  ports,
  storedReadings,
  waitUntil,
  type Build,
  type FleetOptions,
  type ScenarioResult,
} from './harness.ts'

/** The demo office's checkpoint tags: a patrol scanning its real round raises no alerts. */
const ROUND = ['04A1B2C3D4E5F6', '04A1B2C3D4E5F7', '04A1B2C3D4E5F8', '04A1B2C3D4E5F9']

const log = (msg: string) => process.stderr.write(`[chaos] ${msg}\n`)

interface Stack {
  cloud: CloudProcess
  gateway: GatewayProcess
  fleet: Fleet
}

/** A cloud API, a gateway and a device fleet on fresh ports and data, torn down whatever happens. */
async function withStack<T>(
  build: Build,
  o: { cloudEnv?: Record<string, string>; gatewayOverrides?: Record<string, unknown>; fleet: Omit<FleetOptions, 'mqttPort'> },
  body: (s: Stack) => Promise<T>,
): Promise<T> {
  const [cloudPort, mqttPort, httpPort] = await ports(3)
  const cloud = new CloudProcess(build, cloudPort, o.cloudEnv)
  const gateway = new GatewayProcess(build, mqttPort, httpPort, cloud.url, o.gatewayOverrides)
  const fleet = new Fleet({ ...o.fleet, mqttPort: mqttPort })
  try {
    return await body({ cloud, gateway, fleet })
  } finally {
    await fleet.stop()
    await gateway.kill('SIGTERM')
    await cloud.kill('SIGTERM')
    gateway.cleanup()
    cloud.cleanup()
  }
}

/**
 * 1. The gateway is killed with SIGKILL at random moments during a QoS 1 stream, and restarted
 * each time. No acknowledged message may be lost.
 */
export async function gatewayKilled(build: Build, o: { messages: number; kills: number; streamSeconds: number }): Promise<ScenarioResult> {
  const rate = Math.ceil(o.messages / o.streamSeconds)
  const fleetOptions = { clients: { 'gas-001': 2, 'gas-002': 2 }, rate, window: 50, total: o.messages }
  return withStack(build, { fleet: fleetOptions }, async ({ cloud, gateway, fleet }) => {
    await cloud.start()
    await gateway.start()
    await fleet.start()
    const started = Date.now()
    // Random moments across the stream, in order; each kill waits for the previous restart.
    const moments = Array.from({ length: o.kills }, () => 500 + Math.random() * (o.streamSeconds * 1000 - 1500)).sort((a, b) => a - b)
    let kills = 0
    for (const at of moments) {
      const wait = started + at - Date.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      await gateway.kill('SIGKILL')
      kills++
      log(`gateway killed (${kills}/${o.kills}) with ${fleet.acked.size} acknowledged of ${fleet.sent} sent`)
      await gateway.start()
    }
    await fleet.finished(180_000)
    await waitUntil(async () => ((await gateway.pending()) === 0 ? true : undefined), 60_000, 'the outbox to drain')
    const rows = storedReadings(cloud.dbPath)
    return { ...account('gateway_killed', fleet, rows.map((r) => r.value)), kills, per_device_order: inDeviceOrder(rows) }
  })
}

/**
 * 2. The cloud API is down for a while under steady load. Afterwards everything arrives, in order
 * per device, once; the first retry comes soon after recovery; the backlog drains fast.
 */
export async function cloudDown(build: Build, o: { downSeconds: number; rate: number }): Promise<ScenarioResult> {
  const fleetOptions = { clients: { 'gas-001': 1, 'gas-002': 1 }, rate: o.rate, window: 100, total: Infinity }
  return withStack(build, { fleet: fleetOptions }, async ({ cloud, gateway, fleet }) => {
    await cloud.start()
    await gateway.start()
    await fleet.start()
    await new Promise((r) => setTimeout(r, 3000))
    await cloud.kill('SIGKILL')
    log(`cloud API down for ${o.downSeconds} s at ${o.rate} msgs/s`)
    await new Promise((r) => setTimeout(r, o.downSeconds * 1000))
    const backlog = await gateway.pending()
    await cloud.start()
    const recoveredAt = Date.now()
    log(`cloud API back; backlog ${backlog}`)
    // The first ingest request the new process sees.
    await waitUntil(async () => ((await cloud.metric('cloud_http_requests_total{route="/v1/ingest"')) > 0 ? true : undefined), 30_000, 'the first retry')
    const firstRetryS = (Date.now() - recoveredAt) / 1000
    // Drained: the outbox is back to what live traffic keeps in it (one linger's worth).
    await waitUntil(async () => ((await gateway.pending()) < o.rate ? true : undefined), 600_000, 'the backlog to drain')
    const drainS = (Date.now() - recoveredAt) / 1000
    const drainRate = (backlog + o.rate * drainS) / drainS
    await fleet.stop()
    await waitUntil(async () => ((await gateway.pending()) === 0 ? true : undefined), 60_000, 'the outbox to empty')
    const rows = storedReadings(cloud.dbPath)
    return {
      ...account('cloud_down', fleet, rows.map((r) => r.value)),
      down_s: o.downSeconds,
      live_msgs_per_s: o.rate,
      backlog,
      first_retry_s: Number(firstRetryS.toFixed(2)),
      drain_s: Number(drainS.toFixed(1)),
      drain_vs_live: Number((drainRate / o.rate).toFixed(1)),
      per_device_order: inDeviceOrder(rows),
    }
  })
}

/**
 * 3. InfluxDB goes down under load: the cloud answers 503, the gateway holds its data, and after
 * InfluxDB returns nothing is missing.
 */
export async function influxDown(build: Build, o: { downSeconds: number; rate: number }): Promise<ScenarioResult> {
  const influxd = await startInfluxd()
  const cloudEnv = { STORE: 'influx', INFLUX_URL: influxd.url, INFLUX_DB: 'chaos' }
  const fleetOptions = { clients: { 'gas-001': 1, 'gas-002': 1 }, rate: o.rate, window: 100, total: Infinity }
  try {
    return await withStack(build, { cloudEnv, fleet: fleetOptions }, (stack) => influxOutage(stack, influxd, o))
  } finally {
    await influxd.stop()
  }
}

async function influxOutage({ cloud, gateway, fleet }: Stack, influxd: RunningInfluxd, o: { downSeconds: number }): Promise<ScenarioResult> {
  await cloud.start()
  await gateway.start()
  await fleet.start()
  await new Promise((r) => setTimeout(r, 2000))
  await influxd.pause()
  log(`influxd down for ${o.downSeconds} s`)
  await waitUntil(async () => ((await cloud.metric('cloud_ingest_rejected_total{code="CLOUD_STORE_UNAVAILABLE"')) > 0 ? true : undefined), 30_000, 'a 503')
  const notReady = (await fetch(`${cloud.url}/readyz`)).status
  await new Promise((r) => setTimeout(r, o.downSeconds * 1000))
  const held = await gateway.pending()
  await influxd.resume()
  await fleet.stop()
  await waitUntil(async () => ((await gateway.pending()) === 0 ? true : undefined), 120_000, 'the outbox to drain')
  // Read back through the API: InfluxDB is the store here.
  const values: number[] = []
  for (const device of ['gas-001', 'gas-002']) {
    const res = await fetch(`${cloud.url}/v1/series?device=${device}&from=${Date.now() - 3_600_000}&to=${Date.now() + 60_000}&limit=100000`)
    values.push(...((await res.json()) as { points: { value: number }[] }).points.map((p) => p.value))
  }
  return { ...account('influx_down', fleet, values), down_s: o.downSeconds, readyz_while_down: notReady, held_by_gateway: held }
}

/**
 * 4. The center is unreachable long enough for the gateway to hit its disk quota. Telemetry is
 * evicted with gap records; alerts and scans are all kept and delivered; the gaps are visible.
 */
export async function quotaHit(build: Build, o: { quotaMb: number; messages: number }): Promise<ScenarioResult> {
  // Four gas-detector connections and one patrol phone: 80% telemetry, 20% scans. Every 100th
  // message is a reading at alarm level (an alert raised; the next reading clears it).
  const alarm = (v: number) => v % 100 === 0
  const fleetOptions: Omit<FleetOptions, 'mqttPort'> = {
    clients: { 'gas-001': 4, 'phone-001': 1 },
    rate: 0,
    window: 100,
    total: o.messages,
    message: (v, device) =>
      device === 'phone-001'
        ? { kind: 'scan' as const, body: { ts: Date.now(), tag: ROUND[v % ROUND.length], staff: `staff-${v}` } }
        : { kind: 'reading' as const, body: { ts: Date.now(), quantity: 'gas', value: alarm(v) ? 60 + v / 1e6 : (v % 20) + v / 1e6, unit: '%LEL' } },
  }
  return withStack(build, { gatewayOverrides: { outbox: { quotaMb: o.quotaMb } }, fleet: fleetOptions }, async ({ cloud, gateway, fleet }) => {
    await gateway.start() // the center is not reachable yet
    await fleet.start()
    await fleet.finished(300_000)
    const pendingBefore = await gateway.pending()
    await cloud.start()
    await waitUntil(async () => ((await gateway.pending()) === 0 ? true : undefined), 300_000, 'the outbox to drain')
    await fleet.stop()
    const db = new Database(cloud.dbPath, { readonly: true })
    const bodies = (kind: string) => (db.prepare('SELECT body FROM envelopes WHERE kind = ?').all(kind) as { body: string }[]).map((r) => JSON.parse(r.body) as { payload: Record<string, unknown> })
    const readings = bodies('reading').map((e) => e.payload.value as number)
    const scans = bodies('scan').map((e) => Number(String(e.payload.staff).slice(6)))
    const alerts = bodies('alert')
    const gapRows = bodies('gap').map((e) => e.payload as { count: number; class: string })
    db.close()
    const gaps = (await (await fetch(`${cloud.url}/v1/gaps?office=tangquan`)).json()) as { gaps: unknown[] }

    const gasAcked = fleet.ackedBy.get('gas-001') ?? []
    const scansAcked = fleet.ackedBy.get('phone-001') ?? []
    const readingValues = new Set(readings.map((x) => Math.round((x % 1) * 1e6)))
    const scanValues = new Set(scans)
    const evictedTelemetry = gapRows.filter((g) => g.class === 'telemetry').reduce((n, g) => n + g.count, 0)
    const evictedEvents = gapRows.filter((g) => g.class === 'event').reduce((n, g) => n + g.count, 0)
    const readingsMissing = gasAcked.filter((v) => !readingValues.has(v)).length
    // Gas alarms only: the scans may also raise patrol alerts (staff_not_assigned) when the run
    // falls inside the demo route's 08:00 or 20:00 tour, which depends on the time of day.
    const raises = alerts.filter((a) => a.payload.state === 'raised' && a.payload.type === 'sensor.threshold').length
    return {
      name: 'quota_hit',
      sent: fleet.sent,
      acked: fleet.acked.size,
      delivered: readingValues.size + scanValues.size,
      // Scans missing, and readings missing beyond what gap records account for.
      lost: scansAcked.filter((v) => !scanValues.has(v)).length + Math.max(0, readingsMissing - evictedTelemetry),
      duplicates_in_store: readings.length - readingValues.size + (scans.length - scanValues.size),
      quota_mb: o.quotaMb,
      pending_when_center_returned: pendingBefore,
      readings_acked: gasAcked.length,
      readings_evicted_per_gaps: evictedTelemetry,
      readings_missing: readingsMissing,
      scans_acked: scansAcked.length,
      scans_delivered: scanValues.size,
      events_evicted: evictedEvents,
      alarm_readings_acked: gasAcked.filter(alarm).length,
      alerts_raised_delivered: raises,
      gap_records_in_cloud: gaps.gaps.length,
    }
  })
}
