/**
 * npm run bench:ingest [-- --quick]
 *
 * Points per second through the center's `POST /v1/ingest` into a real InfluxDB (Debian's
 * influxd 1.x), against direct line-protocol writes of the very same points to the same influxd
 * in the same run: what the API costs on top of the database.
 *
 * - The API runs as in production: the bundle from `npm run build` (dist/cloud-api.mjs), its own
 *   process, store `influx`, every request authenticated and every envelope fully validated.
 * - Batches are gateway-sized (2,000 envelopes, mostly readings, the rest scans, status, alerts,
 *   aggregates, camera events, reports, incidents) from 4 gateways, with the body a gateway sends:
 *   the outbox's envelope JSON in `{"envelopes":[...]}`, gzip'd, `accept-encoding: gzip, deflate`
 *   as Node's fetch sends it. Everything is made before any timing starts.
 * - Direct writes POST the lines the API's store writes for the same batch
 *   (cloud-api/store/line-protocol.ts) to `/write?precision=n` of another database: same batch
 *   size, same number in flight (4), same keep-alive HTTP client.
 * - Rounds alternate the two (API then direct, then direct then API, ...), each round on fresh
 *   points. The ratio is the median of the rounds' own ratios: a round's two phases run back to
 *   back, so a neighbour's load on this shared machine weighs on both, and one disturbed round
 *   does not decide the result. The rates are each side's median; best rounds are reported too.
 * - CPU time per point of the API and of influxd (from /proc) are reported as well: they say
 *   where the time goes, and they move far less with a neighbour's load than rates do.
 * - At the end both databases must hold exactly the points sent, per measurement.
 * - Last, the floor any JSON API has here: this process gunzips and JSON.parses the last round's
 *   bodies, nothing else, and that CPU time per point is set against influxd's in the direct
 *   phases. With both sides CPU-bound on shared cores, that says how near direct an API that does
 *   only that could come.
 *
 * BENCH_API_NODE_FLAGS adds node flags to the API process (e.g. `--cpu-prof --cpu-prof-dir=DIR`).
 *
 * Last line: {"bench":"ingest","api_points_per_s":…,"direct_points_per_s":…,"ratio":…,
 *             "api_cpu_percent":…,"influxd_cpu_percent_api":…,"influxd_cpu_percent_direct":…, ...}
 */
import http from 'node:http'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { stringify } from 'yaml'
import { MAX_BATCH_ENVELOPES } from '../contracts/ingest.ts'
import { CloudConfigSchema } from '../cloud-api/config.ts'
import { freePort } from '../common/ports.ts'
import { hashToken } from '../common/secrets.ts'
import { startInfluxd } from '../test/helpers/influxd.ts'
import { BatchMaker, type BenchGateway, type IngestBatch } from './lib/ingest-batches.ts'
import { childPids, cpuSeconds, peakRssMb, type Child } from './lib/proc.ts'
import { startCloudApi } from './lib/cloud-process.ts'

const quick = process.argv.includes('--quick')
const rounds = quick ? 3 : 5
const batchesPerRound = quick ? 90 : 240
const warmupBatches = quick ? 20 : 40
const inFlight = 4
const envelopesPerBatch = MAX_BATCH_ENVELOPES
const API_DB = 'bench_api'
const DIRECT_DB = 'bench_direct'
const dist = fileURLToPath(new URL('../dist/', import.meta.url))

const gateways: BenchGateway[] = [1, 2, 3, 4].map((i) => ({ id: `gw-bench-0${i}`, office: `office-0${i}`, token: `bench-gateway-token-0${i}-${'x'.repeat(24)}` }))

interface Phase {
  side: 'api' | 'direct'
  points: number
  seconds: number
  points_per_s: number
  /** % of one core over the phase. */
  api_cpu: number
  influxd_cpu: number
  client_cpu: number
  /** CPU time per point, µs: less at the mercy of a noisy machine than rates are. */
  api_us_per_point: number
  influxd_us_per_point: number
}

/** The center's config: only the sections this version of cloud-api/config.ts knows. */
function cloudConfig(dir: string, port: number): string {
  const known = (CloudConfigSchema as unknown as { properties: Record<string, unknown> }).properties
  const config: Record<string, unknown> = {
    listen: { host: '127.0.0.1', port },
    gateways: gateways.map((g) => ({ id: g.id, office: g.office, tokenHash: hashToken(g.token) })),
    // The gateways' offices, which the center checks a gateway's office against.
    organization: { districts: [{ id: 'bench', name: 'Bench district', offices: gateways.map((g) => ({ id: g.office, name: g.office, utcOffsetMinutes: 480, enterprises: [], routes: [] })) }] },
  }
  // The center's own database, when this version has one, in the run's scratch directory.
  if ('center' in known) config.center = { path: join(dir, 'center.db') }
  // Per-gateway and per-address rate limits are off: four gateways here send what a district's
  // hundreds would. Load shedding (under-pressure) keeps its production setting.
  if ('limits' in known) config.limits = { ingestPerGatewayPerMinute: 0, requestsPerAddressPerMinute: 0 }
  // The store comes from the environment (STORE=influx), which replaces the default store section
  // whole (before 2026-11-27, a file's store section was merged into the default sqlite one).
  const path = join(dir, 'center.yaml')
  writeFileSync(path, stringify(config))
  return path
}

const agent = new http.Agent({ keepAlive: true, maxSockets: inFlight })

/** One POST; resolves with the status and the body (or only its size, when `keep` is false). */
function post(url: string, headers: Record<string, string>, body: Buffer, keep = false): Promise<{ status: number; body: Buffer; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { ...headers, 'content-length': String(body.length) } }, (res) => {
      const chunks: Buffer[] = []
      let bytes = 0
      res.on('data', (c: Buffer) => {
        bytes += c.length
        if (keep || res.statusCode !== 200) chunks.push(c)
      })
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), bytes }))
      res.once('error', reject)
    })
    req.once('error', reject)
    req.end(body)
  })
}

function apiRequest(apiUrl: string, b: IngestBatch, keep = false) {
  return post(
    `${apiUrl}/v1/ingest`,
    { 'content-type': 'application/json', 'content-encoding': 'gzip', 'accept-encoding': 'gzip, deflate', authorization: `Bearer ${b.gateway.token}` },
    b.gzip,
    keep,
  )
}

function directRequest(influxUrl: string, b: IngestBatch) {
  return post(`${influxUrl}/write?db=${DIRECT_DB}&precision=n`, { 'content-type': 'text/plain; charset=utf-8' }, b.lines)
}

/** Sends every batch, `inFlight` at a time; any answer but success ends the run. */
async function phase(side: Phase['side'], batches: IngestBatch[], send: (b: IngestBatch) => Promise<{ status: number; body: Buffer }>, pids: { api: number; influxd: number }): Promise<Phase> {
  const ok = side === 'api' ? 200 : 204
  let next = 0
  const cpu0 = { api: cpuSeconds(pids.api), influxd: cpuSeconds(pids.influxd), client: process.cpuUsage() }
  const started = performance.now()
  const worker = async () => {
    while (next < batches.length) {
      const b = batches[next++]
      const res = await send(b)
      if (res.status !== ok) {
        const hint = res.status === 429 ? ' (rate limited: the bench needs the ingest rate limit off)' : ''
        throw new Error(`${side}: HTTP ${res.status}${hint}: ${res.body.toString('utf8').slice(0, 500)}`)
      }
    }
  }
  await Promise.all(Array.from({ length: inFlight }, worker))
  const seconds = (performance.now() - started) / 1000
  const client = process.cpuUsage(cpu0.client)
  const points = batches.reduce((n, b) => n + b.envelopes, 0)
  const pct = (cpu: number) => Math.round((cpu / seconds) * 100)
  const [apiCpu, influxdCpu] = [cpuSeconds(pids.api) - cpu0.api, cpuSeconds(pids.influxd) - cpu0.influxd]
  const perPoint = (cpu: number) => Number(((cpu / points) * 1e6).toFixed(2))
  return {
    side,
    points,
    seconds,
    points_per_s: Math.round(points / seconds),
    api_cpu: pct(apiCpu),
    influxd_cpu: pct(influxdCpu),
    client_cpu: pct((client.user + client.system) / 1e6),
    api_us_per_point: perPoint(apiCpu),
    influxd_us_per_point: perPoint(influxdCpu),
  }
}

async function influxQuery(influxUrl: string, db: string, q: string): Promise<{ name: string; values: unknown[][] }[]> {
  const res = await fetch(`${influxUrl}/query?db=${db}&q=${encodeURIComponent(q)}`, { method: 'POST' })
  const body = (await res.json()) as { results: { series?: { name: string; values: unknown[][] }[]; error?: string }[] }
  if (body.results[0]?.error) throw new Error(body.results[0].error)
  return body.results[0]?.series ?? []
}

/** Points per measurement, counted by the `id` field every point carries. */
async function storedCounts(influxUrl: string, db: string): Promise<Record<string, number>> {
  const series = await influxQuery(influxUrl, db, 'SELECT count("id") FROM /.*/')
  return Object.fromEntries(series.map((s) => [s.name, Number(s.values[0]?.[1])]))
}

const measurementOf: Record<string, string> = {
  reading: 'reading',
  aggregate: 'reading_1m',
  scan: 'scan',
  camera: 'camera_event',
  report: 'report',
  status: 'device_status',
  alert: 'alert_event',
  incident: 'incident',
  gap: 'data_gap',
}

/**
 * CPU µs per point to gunzip and JSON.parse the batches' bodies and do nothing more: the least
 * any API taking the gateway's body must spend. The median of three passes.
 */
function jsonFloorUs(batches: IngestBatch[]): number {
  const passes: number[] = []
  for (let pass = 0; pass < 3; pass++) {
    const before = process.cpuUsage()
    let points = 0
    for (const b of batches) points += (JSON.parse(gunzipSync(b.gzip).toString('utf8')) as { envelopes: unknown[] }).envelopes.length
    const used = process.cpuUsage(before)
    passes.push((used.user + used.system) / points)
  }
  return median(passes)
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
  return Number(m.toPrecision(6))
}

const dir = mkdtempSync(join(tmpdir(), 'gridwatch-bench-ingest-'))
const influxd = await startInfluxd()
let api: Child | undefined
try {
  const [influxdPid] = childPids('influxd')
  if (influxdPid === undefined) throw new Error('cannot find the influxd child process')
  await influxQuery(influxd.url, '', `CREATE DATABASE ${DIRECT_DB}`)

  const port = await freePort()
  const apiUrl = `http://127.0.0.1:${port}`
  api = await startCloudApi({ dist, dir, configPath: cloudConfig(dir, port), port, influxUrl: influxd.url, database: API_DB })
  const child = api
  const pids = { api: child.proc.pid!, influxd: influxdPid }

  const maker = new BatchMaker(gateways, envelopesPerBatch)
  const sent: Record<string, number> = {}
  const count = (batches: IngestBatch[]) => {
    for (const b of batches) for (const [k, n] of Object.entries(b.kinds)) sent[k] = (sent[k] ?? 0) + n
  }

  // Warm-up: the API's JIT, the series in both databases. One answer is read in full and checked.
  const warm = maker.make(warmupBatches)
  count(warm)
  const first = await apiRequest(apiUrl, warm[0], true)
  if (first.status !== 200) throw new Error(`API warm-up: HTTP ${first.status}: ${first.body.toString('utf8').slice(0, 500)}`)
  await phase('api', warm.slice(1), (b) => apiRequest(apiUrl, b), pids)
  await phase('direct', warm, (b) => directRequest(influxd.url, b), pids)

  const phases: Phase[] = []
  let gzipBytes = 0
  let jsonBytes = 0
  let lastRound: IngestBatch[] = []
  for (let r = 0; r < rounds; r++) {
    const batches = maker.make(batchesPerRound)
    lastRound = batches
    count(batches)
    gzipBytes += batches.reduce((n, b) => n + b.gzip.length, 0)
    jsonBytes += batches.reduce((n, b) => n + b.jsonBytes, 0)
    const order: Phase['side'][] = r % 2 === 0 ? ['api', 'direct'] : ['direct', 'api']
    for (const side of order) {
      const p = side === 'api' ? await phase('api', batches, (b) => apiRequest(apiUrl, b), pids) : await phase('direct', batches, (b) => directRequest(influxd.url, b), pids)
      phases.push(p)
    }
  }

  // Every point sent is in its database, per measurement, on both sides.
  const expected = Object.fromEntries(Object.entries(sent).map(([k, n]) => [measurementOf[k], n]))
  const [inApi, inDirect] = [await storedCounts(influxd.url, API_DB), await storedCounts(influxd.url, DIRECT_DB)]
  const mismatch = Object.entries(expected).filter(([m, n]) => inApi[m] !== n || inDirect[m] !== n)
  const totalSent = Object.values(sent).reduce((a, b) => a + b, 0)
  if (mismatch.length > 0) {
    throw new Error(`stored counts differ from sent: ${mismatch.map(([m, n]) => `${m}: sent ${n}, API db ${inApi[m]}, direct db ${inDirect[m]}`).join('; ')}`)
  }

  const of = (side: Phase['side']) => phases.filter((p) => p.side === side)
  const best = (side: Phase['side']) => of(side).reduce((a, b) => (b.points_per_s > a.points_per_s ? b : a))
  const [bestApi, bestDirect] = [best('api'), best('direct')]
  const roundRatios = of('api').map((p, r) => p.points_per_s / of('direct')[r].points_per_s)
  const ratio = median(roundRatios)
  const medianApi = Math.round(median(of('api').map((p) => p.points_per_s)))
  const medianDirect = Math.round(median(of('direct').map((p) => p.points_per_s)))
  const batches = rounds * batchesPerRound
  // Where the CPU goes per point. With the API and influxd sharing the machine's cores, and both
  // CPU-bound, the best ratio the API can reach is influxd's cost alone over both costs together.
  const apiUs = median(of('api').map((p) => p.api_us_per_point))
  const influxdApiUs = median(of('api').map((p) => p.influxd_us_per_point))
  const influxdDirectUs = median(of('direct').map((p) => p.influxd_us_per_point))
  const cpuRatio = influxdDirectUs / (apiUs + influxdApiUs)
  // Measured after every phase, so that it takes no core from them. The bound is the generous one:
  // influxd's cost per point taken as in the direct phases, though through the API it is often
  // measured higher (probably because the API phases are longer, so more of influxd's background
  // work lands in them).
  const floorUs = Number(jsonFloorUs(lastRound).toFixed(2))
  const floorRatio = influxdDirectUs / (floorUs + influxdDirectUs)
  const fmt = (n: number) => n.toLocaleString('en')

  console.log(
    `ingest bench (${quick ? 'quick' : 'full'}: ${rounds} rounds × ${batchesPerRound} batches of ${fmt(envelopesPerBatch)} envelopes, ${inFlight} in flight, ` +
      `${gateways.length} gateways; gzip'd body ${Math.round(gzipBytes / batches / 1024)} kB, ${Math.round(jsonBytes / batches / 1024)} kB of JSON)`,
  )
  for (const p of phases) {
    console.log(
      `  ${p.side === 'api' ? 'API   ' : 'direct'}  ${fmt(p.points_per_s).padStart(9)} points/s  (${p.seconds.toFixed(2)} s; CPU % of a core: API ${p.api_cpu}, influxd ${p.influxd_cpu}, ` +
        `bench client ${p.client_cpu}; CPU µs a point: API ${p.api_us_per_point}, influxd ${p.influxd_us_per_point})`,
    )
  }
  console.log(`  API     ${fmt(medianApi)} points/s through POST /v1/ingest (median; best ${fmt(bestApi.points_per_s)})`)
  console.log(`  direct  ${fmt(medianDirect)} points/s of the same lines straight to influxd (median; best ${fmt(bestDirect.points_per_s)})`)
  console.log(`  ratio   ${ratio.toFixed(2)}   (goal ≥ 0.8; median of the rounds' ${roundRatios.map((r) => r.toFixed(2)).join(', ')})`)
  console.log(
    `  CPU a point (medians): API ${apiUs} µs + influxd ${influxdApiUs} µs through the API, influxd ${influxdDirectUs} µs direct: ` +
      `on shared cores the API can reach at most ${cpuRatio.toFixed(2)} of direct`,
  )
  console.log(
    `  floor   gunzip + JSON.parse of the same bodies alone: ${floorUs} µs a point (this process); ` +
      `an API that did only that could reach at most ${floorRatio.toFixed(2)} of direct (with influxd at its direct cost)`,
  )
  console.log(`  stored  ${fmt(totalSent)} points in each database, per measurement as sent; API peak RSS ${peakRssMb(pids.api).toFixed(0)} MB`)
  console.log(
    JSON.stringify({
      bench: 'ingest',
      api_points_per_s: medianApi,
      direct_points_per_s: medianDirect,
      ratio: Number(ratio.toFixed(3)),
      best_api_points_per_s: bestApi.points_per_s,
      best_direct_points_per_s: bestDirect.points_per_s,
      round_ratios: roundRatios.map((r) => Number(r.toFixed(3))),
      api_cpu_percent: Math.round(median(of('api').map((p) => p.api_cpu))),
      influxd_cpu_percent_api: Math.round(median(of('api').map((p) => p.influxd_cpu))),
      influxd_cpu_percent_direct: Math.round(median(of('direct').map((p) => p.influxd_cpu))),
      api_cpu_us_per_point: apiUs,
      influxd_cpu_us_per_point_api: influxdApiUs,
      influxd_cpu_us_per_point_direct: influxdDirectUs,
      cpu_bound_ratio: Number(cpuRatio.toFixed(3)),
      json_floor_cpu_us_per_point: floorUs,
      json_floor_bound_ratio: Number(floorRatio.toFixed(3)),
      api_rss_mb: Math.round(peakRssMb(pids.api)),
      batch_envelopes: envelopesPerBatch,
      in_flight: inFlight,
      rounds,
      points_per_round: batchesPerRound * envelopesPerBatch,
      points_stored: totalSent,
      quick,
    }),
  )
} finally {
  await api?.stop()
  agent.destroy()
  await influxd.stop()
  rmSync(dir, { recursive: true, force: true })
}
