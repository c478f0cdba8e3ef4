/**
 * npm run bench:query [-- --quick]
 *
 * Read latency at the center with a month of one district's data loaded: p99 of the open-alerts
 * list (`GET /v1/alerts?state=open&limit=200`) and of a 24 h sensor series at 1 m resolution
 * (`GET /v1/series?window=1m`, 1,440 buckets), as a center user of that district sees them.
 * The peer, measured in the same run: the very InfluxQL query the store sends for that series,
 * straight to influxd's /query, so what the API adds on top of the database is visible.
 *
 * - The API runs as in production: the bundle from `npm run build` (dist/cloud-api.mjs), its own
 *   process, store `influx` on a throwaway influxd (Debian's 1.x), its own center database
 *   (SQLite, WAL, synchronous=FULL), every request authenticated. Rate limits and load shedding
 *   are off so loading is not throttled.
 * - 30 days of one district (3 offices, each with its gateway and enterprises) go in through the
 *   real ingest path, POST /v1/ingest as the gateways: gzip'd batches of 2,000 envelopes, 4 in
 *   flight, ids `${gateway}:${seq}`. Gas sensors read once a minute (full: 90 sensors, ~3.9 M
 *   points; quick: 12 sensors, ~0.5 M), and alerts are raised at random times over the month
 *   (most cleared by the gateway minutes later). Everything is made before the clock starts.
 * - A center user then works most alerts through their lifecycle via the API (acknowledge,
 *   assign, resolve, close), leaving a few hundred open (raised, acknowledged, assigned) and some
 *   resolved. Before measuring, the audit trail's copy to InfluxDB is let finish and influxd
 *   settle (its CPU under a fifth of a core), so neither runs under the measurements.
 * - Measured: after a warm-up, the four requests below taken in turn (the order rotating each
 *   round, so the machine's noise falls on all alike), each sequentially, one connection each,
 *   from request to the last byte of the answer:
 *     open list   GET /v1/alerts?state=open&limit=200, `accept-encoding: gzip, deflate` (as a browser)
 *     series      GET /v1/series?device&quantity=gas&window=1m&from&to, gzip as above
 *     series raw  the same without accept-encoding (no response compression), to show its share
 *     direct      the store's series query to influxd /query, as the store sends it
 *   The series rotate over every sensor; the 24 h window ends where the loaded data ends.
 * - Checked once: the series has 1,440 buckets of count 1 (and equals the direct answer), the
 *   open list's total equals the number left open, and influxd holds every point sent.
 *
 * BENCH_API_NODE_FLAGS adds node flags to the API process (e.g. `--cpu-prof --cpu-prof-dir=DIR`).
 *
 * Last line: {"bench":"query","open_alerts_p99_ms":…,"series_24h_1m_p99_ms":…,"direct_series_p99_ms":…,
 *             "series_ratio":…,"points_loaded":…,"alerts_loaded":…,"open_alerts":…, ...}
 */
import http from 'node:http'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify as queryString } from 'node:querystring'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { gunzipSync, gzip as gzipCb } from 'node:zlib'
import { stringify } from 'yaml'
import type { Envelope } from '../contracts/envelope.ts'
import { MAX_BATCH_ENVELOPES } from '../contracts/ingest.ts'
import { freePort } from '../common/ports.ts'
import { hashToken } from '../common/secrets.ts'
import { envelopeJson } from '../gateway/outbox/serialize.ts'
import { startInfluxd } from '../test/helpers/influxd.ts'
import { childPids, cpuSeconds, peakRssMb, type Child } from './lib/proc.ts'
import { startCloudApi } from './lib/cloud-process.ts'
import { waitUntil } from './lib/stack.ts'

const gzip = promisify(gzipCb)
const quick = process.argv.includes('--quick')
const DAYS = 30
const MINUTE = 60_000
const DAY = 24 * 60 * MINUTE
const OFFICES = 3
const SENSORS_PER_OFFICE = quick ? 4 : 30
const ALERTS_PER_OFFICE_PER_DAY = quick ? 5 : 20
/** Left open at the end, per open state (raised, acknowledged, assigned). */
const OPEN_PER_STATE = quick ? 40 : 100
/** Left resolved (not closed). */
const LEFT_RESOLVED = quick ? 30 : 100
const REQUESTS = quick ? 150 : 500
const WARMUP = quick ? 10 : 40
/** Longest wait for influxd to finish compacting after the load. */
const SETTLE_MAX_S = quick ? 5 : 60
const LOAD_IN_FLIGHT = 4
const ACT_IN_FLIGHT = 4
const DB = 'bench_query'
const DISTRICT = 'd-bench'
const dist = fileURLToPath(new URL('../dist/', import.meta.url))
const CENTER_TOKEN = `bench-center-token-${'c'.repeat(32)}`

interface Sensor {
  id: string
  enterprise: string
}
interface Office {
  id: string
  gateway: { id: string; token: string }
  enterprises: { id: string; name: string }[]
  sensors: Sensor[]
}

const offices: Office[] = Array.from({ length: OFFICES }, (_, o) => {
  const id = `o-bench-${o + 1}`
  const enterprises = [1, 2, 3].map((e) => ({ id: `e-bench-${o + 1}-${e}`, name: `Enterprise ${o + 1}.${e}` }))
  return {
    id,
    gateway: { id: `gw-bench-${o + 1}`, token: `bench-gateway-token-${o + 1}-${'g'.repeat(28)}` },
    enterprises,
    sensors: Array.from({ length: SENSORS_PER_OFFICE }, (_, s) => ({
      id: `gas-${o + 1}-${String(s + 1).padStart(3, '0')}`,
      enterprise: enterprises[s % enterprises.length].id,
    })),
  }
})
const sensors = offices.flatMap((o) => o.sensors)

/** A deterministic PRNG (xorshift32), so runs are comparable. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    return (s >>> 0) / 4_294_967_296
  }
}

function cloudConfig(dir: string, port: number): string {
  const config = {
    listen: { host: '127.0.0.1', port },
    center: { path: join(dir, 'center.db') },
    organization: {
      districts: [
        {
          id: DISTRICT,
          name: 'Bench district',
          offices: offices.map((o) => ({ id: o.id, name: `Office ${o.id}`, utcOffsetMinutes: 480, enterprises: o.enterprises, routes: [] })),
        },
      ],
    },
    gateways: offices.map((o) => ({ id: o.gateway.id, office: o.id, tokenHash: hashToken(o.gateway.token) })),
    users: [{ name: 'bench-center', role: 'center', scope: { district: DISTRICT }, tokenHashes: [hashToken(CENTER_TOKEN)] }],
    limits: { ingestPerGatewayPerMinute: 0, requestsPerAddressPerMinute: 0, maxEventLoopDelayMs: 0, maxHeapUsedMb: 0 },
  }
  // The store comes from the environment (STORE=influx), which replaces the default store section
  // whole (before 2026-11-27, a file's store section was merged into the default sqlite one).
  const path = join(dir, 'center.yaml')
  writeFileSync(path, stringify(config))
  return path
}

// ---- the month of data

interface AlertPlan {
  office: Office
  sensor: Sensor
  ts: number
  severity: 'critical' | 'major' | 'minor'
  value: number
  /** When the gateway clears it, if it does. */
  clearedAt?: number
  /** Filled when its `raised` envelope is made. */
  id?: string
}

interface Batch {
  gateway: Office['gateway']
  gzip: Buffer
  envelopes: number
  readings: number
}

/**
 * One office's month as its gateway sends it: every minute a reading of each sensor (sensor i of
 * the district at second i mod 60 of the minute), the alert events in between, by sequence.
 */
function* officeEnvelopes(office: Office, start: number, end: number, alerts: AlertPlan[], random: () => number): Generator<Envelope> {
  let seq = 0
  const frame = (device: string, enterprise: string, ts: number) => {
    seq++
    return { id: `${office.gateway.id}:${seq}`, seq, gateway: office.gateway.id, office: office.id, device, enterprise, ts }
  }
  type Event = { ts: number; alert: AlertPlan; state: 'raised' | 'cleared' }
  const events: Event[] = alerts.flatMap((a) => [{ ts: a.ts, alert: a, state: 'raised' as const }, ...(a.clearedAt ? [{ ts: a.clearedAt, alert: a, state: 'cleared' as const }] : [])])
  events.sort((a, b) => a.ts - b.ts)
  let next = 0
  const offsetOf = new Map(sensors.map((s, i) => [s.id, (i % 60) * 1000]))
  for (let minute = start; minute < end; minute += MINUTE) {
    for (const s of office.sensors) {
      const ts = minute + offsetOf.get(s.id)!
      // A calm baseline with a daily swing and noise, %LEL.
      const value = Math.round((4 + 2 * Math.sin((ts / DAY) * 2 * Math.PI) + random() * 3) * 100) / 100
      yield { ...frame(s.id, s.enterprise, ts), kind: 'reading', payload: { quantity: 'gas', value, unit: '%LEL' } }
    }
    while (next < events.length && events[next].ts < minute + MINUTE) {
      const { ts, alert: a, state } = events[next++]
      const f = frame(a.sensor.id, a.sensor.enterprise, ts)
      if (state === 'raised') a.id = f.id
      yield {
        ...f,
        kind: 'alert',
        payload: {
          alertId: a.id!,
          state,
          type: 'sensor.threshold',
          severity: a.severity,
          message: state === 'raised' ? `可燃气体 ${a.value} %LEL above 25 at ${a.sensor.id}` : `可燃气体 back below 25 %LEL at ${a.sensor.id}`,
          quantity: 'gas',
          value: state === 'raised' ? a.value : 12.5,
          unit: '%LEL',
          threshold: 25,
          peak: a.value,
          level: 'grid',
        },
      }
    }
  }
}

async function makeBatches(start: number, end: number): Promise<{ batches: Batch[]; alerts: AlertPlan[]; readings: number; envelopes: number }> {
  const random = rng(7)
  const perOffice: Batch[][] = []
  const allAlerts: AlertPlan[] = []
  for (const office of offices) {
    const alerts: AlertPlan[] = []
    const count = ALERTS_PER_OFFICE_PER_DAY * DAYS
    for (let i = 0; i < count; i++) {
      // Spread over the month; whole seconds, so an alert never shares a ms with a reading.
      const ts = start + Math.floor(random() * ((end - start) / 1000 - 3600)) * 1000 + 500
      const r = random()
      const severity = r < 0.1 ? 'critical' : r < 0.7 ? 'major' : 'minor'
      const cleared = random() < 0.8
      alerts.push({
        office,
        sensor: office.sensors[Math.floor(random() * office.sensors.length)],
        ts,
        severity,
        value: Math.round((26 + random() * 40) * 10) / 10,
        ...(cleared ? { clearedAt: ts + (2 + Math.floor(random() * 28)) * MINUTE } : {}),
      })
    }
    allAlerts.push(...alerts)
    const batches: Batch[] = []
    const pending: Promise<void>[] = []
    let chunk: string[] = []
    let readings = 0
    const flush = () => {
      const json = `{"envelopes":[${chunk.join(',')}]}`
      const batch: Batch = { gateway: office.gateway, gzip: Buffer.alloc(0), envelopes: chunk.length, readings }
      batches.push(batch)
      pending.push(gzip(json).then((b) => void (batch.gzip = b)))
      chunk = []
      readings = 0
    }
    for (const e of officeEnvelopes(office, start, end, alerts, random)) {
      chunk.push(envelopeJson(e))
      if (e.kind === 'reading') readings++
      if (chunk.length === MAX_BATCH_ENVELOPES) flush()
    }
    if (chunk.length > 0) flush()
    await Promise.all(pending)
    perOffice.push(batches)
  }
  // The gateways take turns, each in its own order (oldest first), as they would send a backlog.
  const batches: Batch[] = []
  for (let i = 0; perOffice.some((b) => i < b.length); i++) for (const b of perOffice) if (i < b.length) batches.push(b[i])
  return {
    batches,
    alerts: allAlerts,
    readings: batches.reduce((n, b) => n + b.readings, 0),
    envelopes: batches.reduce((n, b) => n + b.envelopes, 0),
  }
}

// ---- HTTP

const apiAgent = new http.Agent({ keepAlive: true, maxSockets: Math.max(LOAD_IN_FLIGHT, ACT_IN_FLIGHT) })
const influxAgent = new http.Agent({ keepAlive: true, maxSockets: 1 })

interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
  ms: number
}

/** One request; `ms` from sending it to the last byte of the answer. */
function request(url: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer; agent?: http.Agent } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const headers = { ...options.headers, ...(options.body ? { 'content-length': String(options.body.length) } : {}) }
    const req = http.request(url, { method: options.method ?? 'GET', agent: options.agent ?? apiAgent, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ms: performance.now() - started }))
      res.once('error', reject)
    })
    req.once('error', reject)
    req.end(options.body)
  })
}

function json<T>(a: Answer): T {
  const raw = a.headers['content-encoding'] === 'gzip' ? gunzipSync(a.body) : a.body
  return JSON.parse(raw.toString('utf8')) as T
}

function expectOk(what: string, a: Answer, status = 200): Answer {
  if (a.status !== status) throw new Error(`${what}: HTTP ${a.status}: ${a.body.toString('utf8').slice(0, 500)}`)
  return a
}

/** Runs `work` over the items, `inFlight` at a time. */
async function pool<T>(items: readonly T[], inFlight: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < items.length) await work(items[next++])
  }
  await Promise.all(Array.from({ length: inFlight }, worker))
}

async function influxQuery(influxUrl: string, q: string): Promise<{ name: string; columns: string[]; values: unknown[][] }[]> {
  const res = await fetch(`${influxUrl}/query?db=${DB}&q=${encodeURIComponent(q)}`)
  const body = (await res.json()) as { results: { series?: { name: string; columns: string[]; values: unknown[][] }[]; error?: string }[] }
  if (body.results[0]?.error) throw new Error(body.results[0].error)
  return body.results[0]?.series ?? []
}

// ---- statistics

interface Stats {
  n: number
  p50: number
  p90: number
  p99: number
  max: number
  mean: number
}

function stats(ms: number[]): Stats {
  const s = [...ms].sort((a, b) => a - b)
  const at = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]
  const r = (x: number) => Math.round(x * 100) / 100
  return { n: s.length, p50: r(at(0.5)), p90: r(at(0.9)), p99: r(at(0.99)), max: r(s.at(-1)!), mean: r(s.reduce((a, b) => a + b, 0) / s.length) }
}

// ---- the run

const dir = mkdtempSync(join(tmpdir(), 'gridwatch-bench-query-'))
const influxd = await startInfluxd()
let api: Child | undefined
try {
  const [influxdPid] = childPids('influxd')
  if (influxdPid === undefined) throw new Error('cannot find the influxd child process')

  const port = await freePort()
  const apiUrl = `http://127.0.0.1:${port}`
  api = await startCloudApi({ dist, dir, configPath: cloudConfig(dir, port), port, influxUrl: influxd.url, database: DB })
  const child = api
  const pids = { api: child.proc.pid!, influxd: influxdPid }
  const asCenter = { authorization: `Bearer ${CENTER_TOKEN}` }

  // The month: whole minutes up to the current one.
  const end = Math.floor(Date.now() / MINUTE) * MINUTE
  const start = end - DAYS * DAY
  const made0 = performance.now()
  const data = await makeBatches(start, end)
  const madeSeconds = (performance.now() - made0) / 1000
  const alertsLoaded = data.alerts.length

  // ---- load through POST /v1/ingest
  const cpu0 = { api: cpuSeconds(pids.api), influxd: cpuSeconds(pids.influxd) }
  const load0 = performance.now()
  await pool(data.batches, LOAD_IN_FLIGHT, async (b) => {
    const a = await request(`${apiUrl}/v1/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', authorization: `Bearer ${b.gateway.token}` },
      body: b.gzip,
    })
    expectOk('ingest', a)
  })
  const loadSeconds = (performance.now() - load0) / 1000
  const batchCount = data.batches.length
  data.batches.length = 0
  const loadCpu = { api: ((cpuSeconds(pids.api) - cpu0.api) / loadSeconds) * 100, influxd: ((cpuSeconds(pids.influxd) - cpu0.influxd) / loadSeconds) * 100 }
  const loadRate = Math.round(data.envelopes / loadSeconds)

  // ---- the center works the alerts: most closed, some resolved, a few hundred left open
  const random = rng(11)
  const order = [...data.alerts]
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[order[i], order[j]] = [order[j], order[i]]
  }
  const fates: { alert: AlertPlan; steps: { action: string; body: object }[] }[] = []
  const ack = { action: 'acknowledge', body: {} }
  const assign = { action: 'assign', body: { department: 'work-safety' } }
  const resolve = { action: 'resolve', body: { note: 'valve closed, area ventilated' } }
  const close = { action: 'close', body: {} }
  order.forEach((alert, i) => {
    const k = Math.floor(i / OPEN_PER_STATE)
    let steps: { action: string; body: object }[]
    if (k === 0) steps = [] // raised
    else if (k === 1) steps = [ack]
    else if (k === 2) steps = [ack, assign]
    else if (i < 3 * OPEN_PER_STATE + LEFT_RESOLVED) steps = [ack, assign, resolve]
    // Half are dispatched before they are resolved, half resolved by the center directly.
    else steps = i % 2 ? [ack, assign, resolve, close] : [ack, resolve, close]
    fates.push({ alert, steps })
  })
  const expectedOpen = Math.min(3 * OPEN_PER_STATE, alertsLoaded)
  const actions = fates.reduce((n, f) => n + f.steps.length, 0)
  const act0 = performance.now()
  const actMs: number[] = []
  await pool(fates, ACT_IN_FLIGHT, async ({ alert, steps }) => {
    for (const s of steps) {
      const a = await request(`${apiUrl}/v1/alerts/${encodeURIComponent(alert.id!)}/${s.action}`, {
        method: 'POST',
        headers: { ...asCenter, 'content-type': 'application/json' },
        body: Buffer.from(JSON.stringify(s.body)),
      })
      expectOk(`${s.action} ${alert.id}`, a)
      actMs.push(a.ms)
    }
  })
  const actSeconds = (performance.now() - act0) / 1000
  // Let the audit trail's copy to InfluxDB finish, so it does not run under the measurements.
  await waitUntil(
    async () => {
      const metrics = await (await fetch(`${apiUrl}/metrics`)).text()
      return /^cloud_audit_pending 0$/m.test(metrics) ? true : undefined
    },
    60_000,
    'the audit trail copied to InfluxDB',
  )
  // And influxd's compactions after the load: a center with a month of data compacted it long
  // ago. Until influxd uses under a fifth of a core for a second (at most SETTLE_MAX_S).
  const settle0 = performance.now()
  for (let last = cpuSeconds(pids.influxd); (performance.now() - settle0) / 1000 < SETTLE_MAX_S; ) {
    await new Promise((r) => setTimeout(r, 1000))
    const now = cpuSeconds(pids.influxd)
    if (now - last < 0.2) break
    last = now
  }
  const settleSeconds = (performance.now() - settle0) / 1000

  // ---- what is measured
  const to = end - 1
  const from = end - DAY
  const seriesUrl = (device: string) => `${apiUrl}/v1/series?device=${device}&quantity=gas&window=1m&from=${from}&to=${to}`
  /** What InfluxStore.series() sends for a 1 m window (rawSeries), byte for byte, as the `influx` client sends it. */
  const directQuery = (device: string) =>
    `SELECT mean("value") AS "mean", min("value") AS "min", max("value") AS "max", count("value") AS "count" FROM "reading" ` +
    `WHERE "device" = '${device}' AND "quantity" = 'gas' AND time >= ${from}ms AND time < ${to + 1}ms GROUP BY time(1m) fill(none)`
  const directUrl = (device: string) => `${influxd.url}/query?${queryString({ db: DB, epoch: undefined, q: directQuery(device), rp: undefined, params: '{}' })}`
  const browser = { ...asCenter, 'accept-encoding': 'gzip, deflate' }
  const listUrl = `${apiUrl}/v1/alerts?state=open&limit=200`
  const probes = {
    list: (_device: string) => request(listUrl, { headers: browser }),
    series: (device: string) => request(seriesUrl(device), { headers: browser }),
    seriesIdentity: (device: string) => request(seriesUrl(device), { headers: asCenter }),
    direct: (device: string) => request(directUrl(device), { agent: influxAgent }),
  }
  type Probe = keyof typeof probes

  // ---- correctness, once
  type SeriesBody = { buckets: { time: string; mean: number; min: number; max: number; count: number }[] }
  const probeDevice = sensors[sensors.length - 1].id
  const seriesBody = json<SeriesBody>(expectOk('series', await probes.series(probeDevice)))
  const plainBody = json<SeriesBody>(expectOk('series (identity)', await probes.seriesIdentity(probeDevice)))
  const directBody = json<{ results: { series?: { values: [string, number, number, number, number][] }[]; error?: string }[] }>(expectOk('direct series', await probes.direct(probeDevice)))
  const buckets = seriesBody.buckets
  if (buckets.length !== 1440 && buckets.length !== 1441) throw new Error(`series: ${buckets.length} buckets, expected 1440`)
  if (!buckets.every((b) => b.count === 1)) throw new Error(`series: buckets with count ≠ 1: ${JSON.stringify(buckets.filter((b) => b.count !== 1).slice(0, 3))}`)
  if (JSON.stringify(plainBody) !== JSON.stringify(seriesBody)) throw new Error('series: the gzip and identity answers differ')
  const directValues = directBody.results[0]?.series?.[0]?.values ?? []
  const same = directValues.length === buckets.length && directValues.every((v, i) => Date.parse(v[0]) === Date.parse(buckets[i].time) && v[1] === buckets[i].mean && v[4] === buckets[i].count)
  if (!same) throw new Error(`series: the API's buckets differ from the direct query's (${buckets.length} against ${directValues.length})`)
  type ListBody = { total: number; alerts: { id: string; state: string }[] }
  const listBody = json<ListBody>(expectOk('open alerts', await probes.list('')))
  if (listBody.total !== expectedOpen) throw new Error(`open alerts: total ${listBody.total}, expected ${expectedOpen}`)
  if (listBody.alerts.length !== Math.min(200, expectedOpen) || !listBody.alerts.every((a) => ['raised', 'acknowledged', 'assigned'].includes(a.state))) {
    throw new Error(`open alerts: ${listBody.alerts.length} items, states ${[...new Set(listBody.alerts.map((a) => a.state))].join(',')}`)
  }
  const [stored] = await influxQuery(influxd.url, 'SELECT count("value") FROM "reading"')
  const pointsStored = Number(stored?.values[0]?.[1])
  if (pointsStored !== data.readings) throw new Error(`influxd holds ${pointsStored} readings, ${data.readings} were sent`)
  const sizes = {
    list_gzip_kb: Math.round((await probes.list('')).body.length / 102.4) / 10,
    list_kb: Math.round(Buffer.byteLength(JSON.stringify(listBody)) / 102.4) / 10,
    series_gzip_kb: Math.round((await probes.series(probeDevice)).body.length / 102.4) / 10,
    series_kb: Math.round((await probes.seriesIdentity(probeDevice)).body.length / 102.4) / 10,
    direct_kb: Math.round((await probes.direct(probeDevice)).body.length / 102.4) / 10,
  }

  // ---- latency: the probes in turn, the order rotating each round
  const names = Object.keys(probes) as Probe[]
  const samples: Record<Probe, number[]> = { list: [], series: [], seriesIdentity: [], direct: [] }
  const cpuM0 = { api: cpuSeconds(pids.api), influxd: cpuSeconds(pids.influxd) }
  const measure0 = performance.now()
  for (let round = 0; round < WARMUP + REQUESTS; round++) {
    const device = sensors[round % sensors.length].id
    for (let k = 0; k < names.length; k++) {
      const name = names[(round + k) % names.length]
      const a = expectOk(name, await probes[name](device))
      if (round >= WARMUP) samples[name].push(a.ms)
    }
  }
  const measureSeconds = (performance.now() - measure0) / 1000
  const measureCpu = { api: ((cpuSeconds(pids.api) - cpuM0.api) / measureSeconds) * 100, influxd: ((cpuSeconds(pids.influxd) - cpuM0.influxd) / measureSeconds) * 100 }
  const s = { list: stats(samples.list), series: stats(samples.series), seriesIdentity: stats(samples.seriesIdentity), direct: stats(samples.direct) }
  const act = stats(actMs)
  const ratio = s.series.p99 / s.direct.p99
  const fmt = (n: number) => n.toLocaleString('en')
  const line = (name: string, x: Stats, note: string) =>
    `  ${name.padEnd(12)} p50 ${x.p50.toFixed(1).padStart(6)}  p90 ${x.p90.toFixed(1).padStart(6)}  p99 ${x.p99.toFixed(1).padStart(6)}  max ${x.max.toFixed(1).padStart(6)} ms   ${note}`

  console.log(
    `query bench (${quick ? 'quick' : 'full'}): one district, ${OFFICES} offices, ${sensors.length} gas sensors at 1/min for ${DAYS} days, ` +
      `${ALERTS_PER_OFFICE_PER_DAY} alerts per office per day`,
  )
  console.log(
    `  loaded     ${fmt(data.envelopes)} envelopes (${fmt(data.readings)} readings, ${fmt(alertsLoaded)} alerts raised and ${fmt(data.envelopes - data.readings - alertsLoaded)} cleared) ` +
      `in ${batchCount} batches through POST /v1/ingest: ${loadSeconds.toFixed(1)} s, ${fmt(loadRate)} envelopes/s ` +
      `(CPU % of a core: API ${Math.round(loadCpu.api)}, influxd ${Math.round(loadCpu.influxd)}; batches made beforehand in ${madeSeconds.toFixed(1)} s)`,
  )
  console.log(
    `  worked     ${fmt(actions)} lifecycle actions as the center user in ${actSeconds.toFixed(1)} s (${Math.round(actions / actSeconds)}/s, ${ACT_IN_FLIGHT} in flight, p50 ${act.p50} ms, p99 ${act.p99} ms); ` +
      `left open ${expectedOpen} (${OPEN_PER_STATE} each raised, acknowledged, assigned), resolved ${LEFT_RESOLVED}, closed ${alertsLoaded - expectedOpen - LEFT_RESOLVED}`,
  )
  console.log(`  settled    influxd quiet ${settleSeconds.toFixed(1)} s after the load (compactions; at most ${SETTLE_MAX_S} s)`)
  console.log(
    `  checked    series 24 h at 1 m: ${buckets.length} buckets of count 1, equal to influxd's answer; open list total ${listBody.total}; influxd holds all ${fmt(pointsStored)} readings`,
  )
  console.log(`  latency    ${REQUESTS} requests each after ${WARMUP} warm-up rounds, sequential, in turn (${measureSeconds.toFixed(1)} s; CPU % of a core: API ${Math.round(measureCpu.api)}, influxd ${Math.round(measureCpu.influxd)})`)
  console.log(line('open list', s.list, `GET /v1/alerts?state=open&limit=200, gzip (${sizes.list_gzip_kb} kB; ${sizes.list_kb} kB of JSON)`))
  console.log(line('series', s.series, `GET /v1/series 24 h window=1m, gzip (${sizes.series_gzip_kb} kB)`))
  console.log(line('series raw', s.seriesIdentity, `the same without accept-encoding (${sizes.series_kb} kB)`))
  console.log(line('direct', s.direct, `the store's InfluxQL to influxd /query (${sizes.direct_kb} kB)`))
  console.log(`  ratio      series p99 / direct p99 = ${ratio.toFixed(2)} (p50 ${(s.series.p50 / s.direct.p50).toFixed(2)}); API peak RSS ${peakRssMb(pids.api).toFixed(0)} MB`)
  console.log(
    JSON.stringify({
      bench: 'query',
      open_alerts_p99_ms: s.list.p99,
      series_24h_1m_p99_ms: s.series.p99,
      direct_series_p99_ms: s.direct.p99,
      series_ratio: Number(ratio.toFixed(3)),
      points_loaded: data.readings,
      alerts_loaded: alertsLoaded,
      open_alerts: listBody.total,
      open_alerts_p50_ms: s.list.p50,
      open_alerts_p90_ms: s.list.p90,
      open_alerts_max_ms: s.list.max,
      series_24h_1m_p50_ms: s.series.p50,
      series_24h_1m_p90_ms: s.series.p90,
      series_24h_1m_max_ms: s.series.max,
      series_identity_p50_ms: s.seriesIdentity.p50,
      series_identity_p99_ms: s.seriesIdentity.p99,
      direct_series_p50_ms: s.direct.p50,
      direct_series_p90_ms: s.direct.p90,
      direct_series_max_ms: s.direct.max,
      series_p50_ratio: Number((s.series.p50 / s.direct.p50).toFixed(3)),
      series_buckets: buckets.length,
      requests: REQUESTS,
      load_envelopes: data.envelopes,
      load_seconds: Number(loadSeconds.toFixed(1)),
      load_envelopes_per_s: loadRate,
      lifecycle_actions: actions,
      lifecycle_actions_per_s: Math.round(actions / actSeconds),
      influxd_settle_s: Number(settleSeconds.toFixed(1)),
      sensors: sensors.length,
      days: DAYS,
      api_rss_mb: Math.round(peakRssMb(pids.api)),
      quick,
    }),
  )
} finally {
  await api?.stop()
  apiAgent.destroy()
  influxAgent.destroy()
  await influxd.stop()
  rmSync(dir, { recursive: true, force: true })
}
