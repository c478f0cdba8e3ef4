/**
 * InfluxDB event store over the 1.x HTTP API (`/write` line protocol, `/query` InfluxQL), which
 * InfluxDB 1.x serves natively and 2.x/3.x serve through their v1-compatibility endpoints.
 *
 * Schema (docs/contracts.md, "InfluxDB schema"), following InfluxData's schema guidance: tags are
 * the low-cardinality dimensions people filter by; ids and free text are fields.
 *
 *   reading        tags office, gateway, enterprise, device, quantity   fields value, unit, id
 *   scan           tags office, gateway, device, checkpoint, method     fields tag, staff, id
 *   camera_event   tags office, gateway, device, event                  fields confidence, channel, region, snapshot, id
 *   report         tags office, gateway, device, type, category         fields text, staff, lat, lon, photo, id
 *   device_status  tags office, gateway, device, state                  fields reason, id
 *   alert_event    tags office, gateway, enterprise, device, type, severity, state
 *                  fields alert_id, message, cause, quantity, value, unit, threshold, peak, id
 *   data_gap       tags office, gateway, device, class, reason            fields from_ms, to_ms, count, kinds, id
 *   reading_1m     tags office, gateway, enterprise, device, quantity   fields min, max, mean, count, unit, to_ms, id
 *   incident       tags office, gateway, device, category, level        fields incident_id, description, reporter, lat, lon, photo, cause, id
 * Every measurement also carries the `grid` tag when the device has one. All of the above live in
 * the raw retention policy (the database's DEFAULT, `autogen`, 90 days by default). The long-term
 * policy (`long_term`, 5 years by default) holds:
 *   reading_1h     the tags of `reading` (GROUP BY *)                   fields mean, min, max, count, sum
 *                  written hourly by the continuous query `reading_1h` (RESAMPLE FOR 7d by default)
 *   lifecycle      tags office, enterprise, subject, action             fields subject_id, actor, state, note, department, level, id
 * open() creates or aligns both policies and the continuous query (docs/influxdb.md).
 *
 * Idempotence: InfluxDB identifies a point by measurement, tag set and timestamp, and a second
 * write of the same point overwrites it. Every tag comes from the envelope, and the timestamp is
 * the envelope's source time in ms followed by six digits of its sequence (ts·10⁶ + seq mod 10⁶,
 * in ns). So a replay rewrites the very same point, while two envelopes of one device in one
 * millisecond remain two points. Sub-millisecond digits therefore carry no time meaning.
 * Lifecycle rows have no sequence: their six digits come from the row id (lifecycleTime).
 */
import { InfluxDB, escape, type INanoDate, type IPoint } from 'influx'
import type { Envelope } from '../../contracts/envelope.ts'
import type { IngestStatus } from '../../contracts/ingest.ts'
import type { SchemaProblem } from '../../contracts/validate.ts'
import { InfluxWriter, StoreRejectedError } from './influx-http.ts'
import { envelopeBodies, escapeMeasurement, escapeTag, quoteString } from './line-protocol.ts'
import {
  StoreUnavailableError,
  windowMs,
  type AggregateQuery,
  type AlertEventQuery,
  type AlertEventRow,
  type EventStore,
  type GapQuery,
  type GapRow,
  type LifecycleQuery,
  type LifecycleRow,
  type ReadingPoint,
  type ScanQuery,
  type ScanRow,
  type SeriesBucket,
  type SeriesQuery,
} from './store.ts'

export interface InfluxStoreOptions {
  /** e.g. http://127.0.0.1:8086 (credentials may be in the URL: http://user:pass@host:8086) */
  url: string
  database: string
  timeoutMs?: number
  /**
   * The retention policy of the raw data, made the database's DEFAULT (so every write and query
   * that names no policy uses it). Default `autogen`, the one CREATE DATABASE makes, so data
   * written before retention was configured stays where queries look.
   */
  rawPolicy?: string
  /** How long raw points are kept, as an InfluxQL duration (`90d`, `12w`, `INF`). Default `90d`. */
  rawRetention?: string
  /** The retention policy of the hourly rollups (`reading_1h`) and the lifecycle audit trail. Default `long_term`. */
  longTermPolicy?: string
  /** How long the long-term policy keeps its points. Default `1825d` (5 years). */
  longTermRetention?: string
  /**
   * How far back each hourly run of the rollup continuous query recomputes (`RESAMPLE FOR`), so
   * readings that arrive late (a gateway's backlog after an outage) still reach their hour. At
   * least 1h. Default `7d`, the gateway's default telemetry TTL.
   */
  rollupResample?: string
  /**
   * `series()` with 1h and 1d windows reads the part of the range older than this from the
   * rollups, the rest from raw points. Default: the raw retention, i.e. rollups serve only what
   * raw data may no longer hold. Shorter is faster for long ranges but misses readings that
   * arrived after their hour's last recomputation (see `rollupResample`); `INF` never reads rollups.
   */
  rollupsOlderThan?: string
  /** The clock (epoch ms) that places the rollup horizon; for tests. */
  now?: () => number
  /**
   * Whether open() may shorten an existing retention policy. Off by default: shortening makes
   * InfluxDB delete what is older at once, so an upgrade from an unlimited `autogen` must not do
   * it by itself. When on, the raw policy's older readings are rolled up into the long-term
   * policy first, so their hourly history survives.
   */
  shortenRetention?: boolean
}

export const Measurements = {
  reading: 'reading',
  scan: 'scan',
  camera: 'camera_event',
  report: 'report',
  status: 'device_status',
  alert: 'alert_event',
  gap: 'data_gap',
  aggregate: 'reading_1m',
  incident: 'incident',
} as const

/** The point timestamp in ns: source ms, then the sequence's low six digits. */
export function pointTime(ts: number, seq: number): string {
  return `${ts}${String(seq % 1_000_000).padStart(6, '0')}`
}

/** Source ms back from a point timestamp in ns. */
export function sourceMs(nanos: string): number {
  return Number(nanos.slice(0, -6) || '0')
}

/** Measurements of the long-term retention policy. */
export const LongTermMeasurements = {
  /** Hourly rollups of `reading`, written by the continuous query ROLLUP_QUERY. */
  readingHourly: 'reading_1h',
  /** The lifecycle audit trail (EventStore.writeLifecycle). */
  lifecycle: 'lifecycle',
} as const

/** The name of the continuous query that fills `reading_1h`. */
export const ROLLUP_QUERY = 'reading_1h'

const HOUR_MS = 3_600_000

/**
 * The point timestamp in ns of a lifecycle row: its ms, then six digits from its id. An id that
 * ends in `:<n>` gives (FNV-1a of what precedes the `:<n>` + n) mod 10⁶, so the center's ids
 * (`lc:<center db epoch>:<seq>`) give the sequence plus a constant: transitions within one millisecond get
 * distinct timestamps in sequence order, like envelopes (pointTime). Ids of the form
 * `<prefix>:<n>` with many prefixes (`act:<case>:<n>`) are spread by the prefix; any other id is
 * FNV-1a of the whole id. The same row always gets the same timestamp, so a rewrite overwrites it.
 */
export function lifecycleTime(ts: number, id: string): string {
  const m = /^(.*):(\d+)$/s.exec(id)
  const digits = m ? (fnv1a(m[1]) + Number(m[2].slice(-6))) % 1_000_000 : fnv1a(id) % 1_000_000
  return pointTime(ts, digits)
}

/**
 * An InfluxQL string literal. The `influx` package's escape.stringLit escapes only `'`, so a
 * value ending in a backslash escaped the closing quote and let the rest of the statement be read
 * as InfluxQL. InfluxQL's scanner reads `\\`, `\'` and `\n` in a string and refuses a raw newline.
 */
export function stringLit(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`
}

/** FNV-1a, 32 bits, of the UTF-8 bytes. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5
  for (const byte of Buffer.from(text, 'utf8')) h = Math.imul(h ^ byte, 0x01000193) >>> 0
  return h
}

const DURATION_UNIT_MS: Record<string, number> = { ns: 1e-6, u: 1e-3, µ: 1e-3, ms: 1, s: 1000, m: 60_000, h: HOUR_MS, d: 24 * HOUR_MS, w: 7 * 24 * HOUR_MS }

/** Milliseconds of an InfluxQL duration literal (`90d`, `12w`, `1h`); `INF` is Infinity. Throws on anything else. */
export function durationMs(literal: string): number {
  if (/^inf$/i.test(literal)) return Infinity
  const m = /^(\d+)(ns|u|µ|ms|s|m|h|d|w)$/.exec(literal)
  if (!m) throw new Error(`not an InfluxQL duration: ${JSON.stringify(literal)} (e.g. 90d, 12w, INF)`)
  return Number(m[1]) * DURATION_UNIT_MS[m[2]]
}

/** How InfluxDB writes a duration back (influxql.FormatDuration), for whole-ms durations: the largest unit that divides it. */
function formatDuration(ms: number): string {
  if (ms === Infinity || ms === 0) return 'INF'
  for (const [unit, size] of [['w', 7 * 24 * HOUR_MS], ['d', 24 * HOUR_MS], ['h', HOUR_MS], ['m', 60_000], ['s', 1000]] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`
  }
  return `${ms}ms`
}

/** Milliseconds of a Go duration as SHOW RETENTION POLICIES prints it (`2160h0m0s`; `0s` is infinite). */
function goDurationMs(text: string): number {
  const units: Record<string, number> = { h: HOUR_MS, m: 60_000, s: 1000, ms: 1, us: 1e-3, µs: 1e-3, ns: 1e-6 }
  let ms = 0
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)/g)) ms += Number(n) * units[unit]
  return ms === 0 ? Infinity : ms
}

/** InfluxDB's default shard group duration for a retention policy of this length. */
function shardDurationMs(retentionMs: number): number {
  if (retentionMs < 2 * 24 * HOUR_MS) return HOUR_MS
  if (retentionMs < 180 * 24 * HOUR_MS) return 24 * HOUR_MS
  return 7 * 24 * HOUR_MS
}

export class InfluxStore implements EventStore {
  readonly kind = 'influx'
  /**
   * How long the raw policy really keeps points: the configured retention, or longer when an
   * existing policy was left longer (not shortened, see ensurePolicy). Infinity for `0s`.
   */
  private rawKeepsMs: number
  private readonly influx: InfluxDB
  private readonly schema: {
    rawPolicy: string
    rawRetentionMs: number
    longTermPolicy: string
    longTermRetentionMs: number
    resampleMs: number
    rollupsOlderThanMs: number
  }
  private opened = false
  private writer: InfluxWriter | undefined
  /** What open() chose not to do, for the operator (logged by the API at start). */
  readonly notices: string[] = []
  private fresh = false
  private lifecycleWriter: InfluxWriter | undefined
  /** The server's URL for messages: without the user and password the configured URL may carry. */
  private readonly where: string

  constructor(private readonly options: InfluxStoreOptions) {
    const url = new URL(options.url)
    this.where = withoutCredentials(url)
    this.influx = new InfluxDB({
      host: url.hostname,
      port: Number(url.port || (url.protocol === 'https:' ? 443 : 8086)),
      protocol: url.protocol === 'https:' ? 'https' : 'http',
      database: options.database,
      ...(url.username ? { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) } : {}),
      // Retrying is the gateway's job (it holds the data durably); the client fails fast so the
      // API can answer 503 with Retry-After instead of hanging.
      pool: { maxRetries: 0, requestTimeout: options.timeoutMs ?? 10_000 },
    })
    this.schema = {
      rawPolicy: options.rawPolicy ?? 'autogen',
      rawRetentionMs: durationMs(options.rawRetention ?? '90d'),
      longTermPolicy: options.longTermPolicy ?? 'long_term',
      longTermRetentionMs: durationMs(options.longTermRetention ?? '1825d'),
      resampleMs: durationMs(options.rollupResample ?? '7d'),
      rollupsOlderThanMs: durationMs(options.rollupsOlderThan ?? options.rawRetention ?? '90d'),
    }
    this.rawKeepsMs = this.schema.rawRetentionMs
    for (const [name, ms] of [['rawRetention', this.schema.rawRetentionMs], ['longTermRetention', this.schema.longTermRetentionMs]] as const) {
      if (ms < HOUR_MS) throw new Error(`InfluxStore ${name} must be at least 1h (InfluxDB's minimum) or INF`)
    }
    if (this.schema.resampleMs < HOUR_MS || this.schema.resampleMs === Infinity) throw new Error('InfluxStore rollupResample must be a finite duration of at least 1h')
    if (this.schema.rawPolicy === this.schema.longTermPolicy) throw new Error('InfluxStore rawPolicy and longTermPolicy must differ')
  }

  /**
   * Creates the database, its retention policies and the rollup continuous query, or brings
   * existing ones in line with the options. Safe to run again, by several API instances at once.
   */
  async open(): Promise<void> {
    // A database made just now holds nothing a shorter retention could delete.
    const existed = await this.guard('list databases', async () => (await this.influx.getDatabaseNames()).includes(this.options.database))
    this.fresh = !existed
    await this.guard('create database', () => this.influx.createDatabase(this.options.database))
    await this.guard('retention setup', async () => {
      await this.ensurePolicy(this.schema.rawPolicy, this.schema.rawRetentionMs, true)
      await this.ensurePolicy(this.schema.longTermPolicy, this.schema.longTermRetentionMs, false)
      await this.ensureRollupQuery()
    })
    this.opened = true
  }

  /**
   * Creates the retention policy, or alters it when its duration differs or it should be the
   * default and is not. The shard group duration is InfluxDB's own default for the duration, set
   * only along with a duration (so an operator's tuning of it survives restarts).
   */
  private async ensurePolicy(name: string, retentionMs: number, isDefault: boolean): Promise<void> {
    const on = `${escape.quoted(name)} ON ${escape.quoted(this.options.database)}`
    const duration = `DURATION ${formatDuration(retentionMs)}`
    const shard = `SHARD DURATION ${formatDuration(shardDurationMs(retentionMs))}`
    const asDefault = isDefault ? ' DEFAULT' : ''
    const existing = (await this.influx.showRetentionPolicies(this.options.database)).find((p) => p.name === name)
    // Every way out but "left longer" below makes the policy keep the configured duration.
    if (name === this.schema.rawPolicy) this.rawKeepsMs = retentionMs
    if (!existing) {
      try {
        await this.ddl(`CREATE RETENTION POLICY ${on} ${duration} REPLICATION 1 ${shard}${asDefault}`)
        return
      } catch (err) {
        // Another instance created it just now, maybe from other options: make it ours.
        if (!/already exists/.test((err as Error).message)) throw err
      }
    } else if (goDurationMs(existing.duration) === retentionMs) {
      if (isDefault && !existing.default) await this.ddl(`ALTER RETENTION POLICY ${on} DEFAULT`)
      return
    } else if (goDurationMs(existing.duration) > retentionMs) {
      if (!this.options.shortenRetention && !this.fresh) {
        // What InfluxDB keeps is what counts when envelopes are judged too old (write()).
        if (name === this.schema.rawPolicy) this.rawKeepsMs = goDurationMs(existing.duration)
        this.notices.push(
          `retention policy "${name}" keeps ${existing.duration === '0s' ? 'everything' : existing.duration}, longer than the configured ${formatDuration(retentionMs)}; ` +
            'not shortened, since InfluxDB would delete the older data at once. Set shortenRetention to shorten it (older readings are rolled up first).',
        )
        if (isDefault && !existing.default) await this.ddl(`ALTER RETENTION POLICY ${on} DEFAULT`)
        return
      }
      if (name === this.schema.rawPolicy && !this.fresh) await this.rollUpEverything()
    }
    await this.ddl(`ALTER RETENTION POLICY ${on} ${duration} ${shard}${asDefault}`)
  }

  /**
   * The rollup query: hourly mean, min, max, count and sum of `reading` per series (GROUP BY *
   * keeps every tag), from the raw policy into the long-term one. `sum` lets coarser windows be
   * rolled up exactly (mean = Σsum / Σcount).
   */
  private rollupSelect(where = ''): string {
    const db = escape.quoted(this.options.database)
    const into = `${db}.${escape.quoted(this.schema.longTermPolicy)}.${escape.quoted(LongTermMeasurements.readingHourly)}`
    const from = `${db}.${escape.quoted(this.schema.rawPolicy)}.${escape.quoted(Measurements.reading)}`
    return (
      'SELECT mean("value") AS "mean", min("value") AS "min", max("value") AS "max", count("value") AS "count", sum("value") AS "sum" ' +
      `INTO ${into} FROM ${from}${where} GROUP BY time(1h), *`
    )
  }

  /** The continuous query's definition, as InfluxDB would print it back but for quoting. */
  private rollupStatement(): string {
    return (
      `CREATE CONTINUOUS QUERY ${escape.quoted(ROLLUP_QUERY)} ON ${escape.quoted(this.options.database)} ` +
      `RESAMPLE EVERY 1h FOR ${formatDuration(this.schema.resampleMs)} BEGIN ${this.rollupSelect()} END`
    )
  }

  /**
   * Creates the continuous query; one of that name with another definition (other options, an
   * older version) is dropped and created anew. CREATE of an identical query is a no-op in
   * InfluxDB 1.x, and an "already exists" from a concurrent instance is taken as done.
   */
  private async ensureRollupQuery(): Promise<void> {
    const wanted = this.rollupStatement()
    const found = await this.continuousQuery(ROLLUP_QUERY)
    if (found !== undefined && normalisedStatement(found) === normalisedStatement(wanted)) return
    if (found) await this.ddl(`DROP CONTINUOUS QUERY ${escape.quoted(ROLLUP_QUERY)} ON ${escape.quoted(this.options.database)}`)
    try {
      await this.ddl(wanted)
    } catch (err) {
      if (!/already exists/.test((err as Error).message)) throw err
    }
  }

  /**
   * Runs the rollup query over the whole hours overlapping [from, to], a day per statement: for
   * readings written before the continuous query existed, or later than its RESAMPLE window
   * reaches back (docs/influxdb.md). Rewrites those hours' rollups from the raw points.
   */
  /** Rolls up every raw reading there is, before a shorter retention deletes the old ones. */
  private async rollUpEverything(): Promise<void> {
    await this.ensurePolicy(this.schema.longTermPolicy, this.schema.longTermRetentionMs, false)
    const db = escape.quoted(this.options.database)
    const from = `${db}.${escape.quoted(this.schema.rawPolicy)}.${escape.quoted(Measurements.reading)}`
    const rows = (await this.influx.queryRaw(`SELECT first("value") FROM ${from}`, { precision: 'ms' })) as { results: { series?: { values: [number, number][] }[] }[] }
    const oldest = rows.results[0]?.series?.[0]?.values[0]?.[0]
    if (oldest === undefined) return
    await this.backfill(oldest, (this.options.now ?? Date.now)())
  }

  async backfillRollups(from: number, to: number): Promise<void> {
    if (!this.opened) await this.open()
    await this.backfill(from, to)
  }

  private async backfill(from: number, to: number): Promise<void> {
    const start = Math.floor(from / HOUR_MS) * HOUR_MS
    const end = Math.floor(to / HOUR_MS) * HOUR_MS + HOUR_MS
    for (let t = start; t < end; t += 24 * HOUR_MS) {
      const until = Math.min(t + 24 * HOUR_MS, end)
      await this.guard('rollup backfill', () => this.ddl(this.rollupSelect(` WHERE time >= ${t}ms AND time < ${until}ms`)))
    }
  }

  /** The definition of this database's continuous query of that name, as InfluxDB prints it. */
  private async continuousQuery(name: string): Promise<string | undefined> {
    const res = (await this.influx.queryRaw('SHOW CONTINUOUS QUERIES')) as {
      results: { error?: string; series?: { name: string; columns: string[]; values?: unknown[][] }[] }[]
    }
    const result = res.results[0]
    if (result?.error) throw new Error(result.error)
    const series = result?.series?.find((s) => s.name === this.options.database)
    const [nameAt, queryAt] = [series?.columns.indexOf('name') ?? -1, series?.columns.indexOf('query') ?? -1]
    const row = series?.values?.find((v) => v[nameAt] === name)
    return row ? String(row[queryAt]) : undefined
  }

  /** A statement that changes something (POST /query), throwing on an error in its result. */
  private async ddl(statement: string): Promise<void> {
    await this.influx.query(statement, { method: 'POST' })
  }

  async write(envelopes: readonly Envelope[]): Promise<IngestStatus[]> {
    // InfluxDB may have been down when the API started; create the database on first success.
    if (!this.opened) await this.open()
    // Line protocol written directly (line-protocol.ts: the points toPoint describes) and POSTed
    // over keep-alive HTTP, bodies of at most 5,000 lines in turn. Failures are StoreUnavailableError;
    // a point InfluxDB refuses is its subclass StoreRejectedError (influx-http.ts says which is which).
    this.writer ??= new InfluxWriter({ url: this.options.url, database: this.options.database, timeoutMs: this.options.timeoutMs })
    // Points older than the raw retention policy keeps are dropped by InfluxDB, always: they are
    // named here without a write, so that a gateway sets them aside (its dead letters) rather
    // than send them again until its own TTL drops them, and so that InfluxDB's answer for them
    // cannot stand in the way of naming other refusals of the same write.
    const oldest = (this.options.now ?? Date.now)() - this.rawKeepsMs
    const retention = `older than the event store keeps (retention policy "${this.schema.rawPolicy}"): InfluxDB drops such points`
    const kept: number[] = []
    const problems: SchemaProblem[] = []
    envelopes.forEach((e, i) => (e.ts < oldest ? problems.push({ path: `/envelopes/${i}/ts`, message: retention }) : kept.push(i)))
    const toWrite = problems.length === 0 ? envelopes : kept.map((i) => envelopes[i])
    let refused: StoreRejectedError | undefined
    for (const { body, lines, first } of envelopeBodies(toWrite, 5000)) {
      try {
        await this.writer.write(body, lines, first)
      } catch (err) {
        // The database was dropped under us: create it again on the next write.
        if (/database not found/.test((err as Error).message)) this.opened = false
        if (!(err instanceof StoreRejectedError) || err.problems.length === 0) throw err
        refused = err
        // Paths of the envelopes written, back to the batch's.
        for (const p of err.problems) {
          const m = /^\/envelopes\/(\d+)(.*)$/.exec(p.path)
          problems.push(m && toWrite !== envelopes ? { ...p, path: `/envelopes/${kept[Number(m[1])]}${m[2]}` } : p)
        }
      }
    }
    if (problems.length > 0) {
      const reason = refused?.reason ?? 'beyond_retention'
      throw new StoreRejectedError(refused?.message ?? `${problems.length} point(s) older than the raw retention policy`, refused?.status ?? 400, reason, problems.length, problems)
    }
    // InfluxDB cannot tell a replay from a first write; both leave exactly one point.
    return envelopes.map(() => 'stored')
  }

  async readings(q: SeriesQuery): Promise<ReadingPoint[]> {
    if (q.enterprises?.length === 0) return []
    let where = `${deviceMatch(q)} AND ${timeRange(q.from, q.to)}`
    if (q.quantity !== undefined) where += ` AND "quantity" = ${stringLit(q.quantity)}`
    const rows = await this.guard('query', () =>
      this.influx.query<{ time: INanoDate; quantity: string; value: number; unit: string; id: string }>(
        `SELECT "value", "unit", "id", "quantity" FROM "${Measurements.reading}" WHERE ${where} ORDER BY time ASC LIMIT ${Math.floor(q.limit)}`,
      ),
    )
    return rows.map((r) => ({ ts: sourceMs(r.time.getNanoTime()), quantity: r.quantity, value: r.value, unit: r.unit ?? '', id: r.id }))
  }

  async alertEvents(q: AlertEventQuery): Promise<AlertEventRow[]> {
    let where = timeRange(q.from, q.to)
    if (q.office !== undefined) where = `"office" = ${stringLit(q.office)} AND ${where}`
    const rows = await this.guard('query', () =>
      this.influx.query<Record<string, unknown> & { time: INanoDate }>(
        `SELECT * FROM "${Measurements.alert}" WHERE ${where} ORDER BY time ASC LIMIT ${Math.floor(q.limit)}`,
      ),
    )
    return rows.map(alertRowFrom)
  }

  async gaps(q: GapQuery): Promise<GapRow[]> {
    let where = timeRange(q.from, q.to)
    if (q.office !== undefined) where = `"office" = ${stringLit(q.office)} AND ${where}`
    const rows = await this.guard('query', () =>
      this.influx.query<Record<string, unknown> & { time: INanoDate }>(
        `SELECT * FROM "${Measurements.gap}" WHERE ${where} ORDER BY time ASC LIMIT ${Math.floor(q.limit)}`,
      ),
    )
    return rows.map((r) => ({
      id: r.id as string,
      ts: sourceMs(r.time.getNanoTime()),
      office: r.office as string,
      gateway: r.gateway as string,
      device: r.device as string,
      class: r.class as GapRow['class'],
      reason: r.reason as GapRow['reason'],
      from: r.from_ms as number,
      to: r.to_ms as number,
      count: r.count as number,
      kinds: (r.kinds as string).split(','),
    }))
  }

  async series(q: AggregateQuery): Promise<SeriesBucket[]> {
    if (q.enterprises?.length === 0) return []
    const size = windowMs[q.window]
    // Rollups serve the part of the range before the horizon, raw points the rest; the horizon is
    // a window boundary, so no window is split between the two.
    const olderThan = this.schema.rollupsOlderThanMs
    const horizon = q.window === '1m' || olderThan === Infinity ? -Infinity : Math.ceil(((this.options.now ?? Date.now)() - olderThan) / size) * size
    const buckets: SeriesBucket[] = []
    if (q.from < horizon) buckets.push(...(await this.rollupSeries(q, Math.min(q.to, horizon - 1))))
    if (q.to >= horizon) buckets.push(...(await this.rawSeries(q, Math.max(q.from, horizon))))
    return buckets
  }

  /** Windows of raw points in [from, q.to]; fill(none) leaves out the empty ones. */
  private async rawSeries(q: AggregateQuery, from: number): Promise<SeriesBucket[]> {
    const where = `${deviceMatch(q)} AND "quantity" = ${stringLit(q.quantity)} AND ${timeRange(from, q.to)}`
    const rows = await this.guard('query', () =>
      this.influx.query<{ time: INanoDate; mean: number; min: number; max: number; count: number }>(
        `SELECT mean("value") AS "mean", min("value") AS "min", max("value") AS "max", count("value") AS "count" FROM "${Measurements.reading}" ` +
          `WHERE ${where} GROUP BY time(${q.window}) fill(none)`,
      ),
    )
    return rows.map((r) => ({ ts: r.time.getTime(), mean: r.mean, min: r.min, max: r.max, count: r.count }))
  }

  /**
   * Windows of the hourly rollups overlapping [q.from, to]: whole hours, so a `from` or `to`
   * within an hour counts all of that hour. A window's mean is Σsum / Σcount, as exact as a mean
   * of the raw points.
   */
  private async rollupSeries(q: AggregateQuery, to: number): Promise<SeriesBucket[]> {
    if (!this.opened) await this.open()
    const from = Math.floor(q.from / HOUR_MS) * HOUR_MS
    const where = `${deviceMatch(q)} AND "quantity" = ${stringLit(q.quantity)} AND ${timeRange(from, to)}`
    const rows = await this.guard('query', () =>
      this.influx.query<{ time: INanoDate; sum: number; min: number; max: number; count: number }>(
        `SELECT sum("sum") AS "sum", min("min") AS "min", max("max") AS "max", sum("count") AS "count" FROM ${this.longTerm(LongTermMeasurements.readingHourly)} ` +
          `WHERE ${where} GROUP BY time(${q.window}) fill(none)`,
      ),
    )
    return rows.map((r) => ({ ts: r.time.getTime(), mean: r.sum / r.count, min: r.min, max: r.max, count: r.count }))
  }

  async scans(q: ScanQuery): Promise<ScanRow[]> {
    const where = `"office" = ${stringLit(q.office)} AND ${timeRange(q.from, q.to)}`
    const rows = await this.guard('query', () =>
      this.influx.query<Record<string, unknown> & { time: INanoDate }>(
        `SELECT * FROM "${Measurements.scan}" WHERE ${where} ORDER BY time ASC LIMIT ${Math.floor(q.limit)}`,
      ),
    )
    return rows.map((r) => {
      const row: ScanRow = {
        id: r.id as string,
        ts: sourceMs(r.time.getNanoTime()),
        office: r.office as string,
        device: r.device as string,
        tag: r.tag as string,
        method: r.method as string,
      }
      if (typeof r.checkpoint === 'string' && r.checkpoint !== '') row.checkpoint = r.checkpoint
      if (typeof r.staff === 'string') row.staff = r.staff
      if (typeof r.lat === 'number' && typeof r.lon === 'number') row.location = { lat: r.lat, lon: r.lon }
      return row
    })
  }

  /**
   * Lifecycle rows go to the long-term policy (an audit trail outlives raw readings), at
   * lifecycleTime(ts, id): rewriting a row rewrites the same point. Line protocol as write()'s
   * (line-protocol.ts escaping; the `influx` package would alter a `\'` in a note), at most 5,000
   * lines a request.
   */
  async writeLifecycle(rows: readonly LifecycleRow[]): Promise<void> {
    if (rows.length === 0) return
    if (!this.opened) await this.open()
    this.lifecycleWriter ??= new InfluxWriter({
      url: this.options.url,
      database: this.options.database,
      retentionPolicy: this.schema.longTermPolicy,
      timeoutMs: this.options.timeoutMs,
    })
    const lines = rows.map(lifecycleLine)
    // Rows refused for good in one body do not stop the bodies after it: the caller takes a
    // refusal naming rows as "everything else is written".
    let refused: StoreRejectedError | undefined
    const problems: SchemaProblem[] = []
    for (let i = 0; i < lines.length; i += 5000) {
      const chunk = lines.slice(i, i + 5000)
      try {
        await this.lifecycleWriter.write(chunk.join('\n'), chunk, i)
      } catch (err) {
        if (!(err instanceof StoreRejectedError) || err.problems.length === 0) throw err
        refused ??= err
        problems.push(...err.problems)
      }
    }
    if (refused) throw new StoreRejectedError(refused.message, refused.status, refused.reason, problems.length, problems)
  }

  async lifecycle(q: LifecycleQuery): Promise<LifecycleRow[]> {
    if (!this.opened) await this.open()
    const where: string[] = []
    if (q.office !== undefined) where.push(`"office" = ${stringLit(q.office)}`)
    if (q.subjectId !== undefined) where.push(`"subject_id" = ${stringLit(q.subjectId)}`)
    where.push(timeRange(q.from, q.to))
    const rows = await this.guard('query', () =>
      this.influx.query<Record<string, unknown> & { time: INanoDate }>(
        `SELECT * FROM ${this.longTerm(LongTermMeasurements.lifecycle)} WHERE ${where.join(' AND ')} ORDER BY time ASC LIMIT ${Math.floor(q.limit)}`,
      ),
    )
    return rows.map((r) => {
      const row: LifecycleRow = {
        id: r.id as string,
        ts: sourceMs(r.time.getNanoTime()),
        office: r.office as string,
        subject: r.subject as LifecycleRow['subject'],
        subjectId: r.subject_id as string,
        action: r.action as string,
        actor: r.actor as string,
        state: r.state as string,
      }
      if (typeof r.enterprise === 'string' && r.enterprise !== '') row.enterprise = r.enterprise
      if (typeof r.note === 'string') row.note = r.note
      if (typeof r.department === 'string') row.department = r.department
      if (typeof r.level === 'string') row.level = r.level
      return row
    })
  }

  /** A measurement of the long-term policy, qualified for FROM. */
  private longTerm(measurement: string): string {
    return `${escape.quoted(this.schema.longTermPolicy)}.${escape.quoted(measurement)}`
  }

  async ping(): Promise<void> {
    const hosts = await this.influx.ping(this.options.timeoutMs ?? 5000)
    if (!hosts.some((h) => h.online)) throw new StoreUnavailableError(`InfluxDB at ${this.where} does not answer /ping`)
  }

  async close(): Promise<void> {
    this.writer?.close()
    this.writer = undefined
    this.lifecycleWriter?.close()
    this.lifecycleWriter = undefined
  }

  private async guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      throw new StoreUnavailableError(`InfluxDB ${what} failed: ${(err as Error).message}`, { cause: err })
    }
  }
}

/** One lifecycle row as a line: tags and fields in key order, empty tags and absent fields left out. */
function lifecycleLine(r: LifecycleRow): string {
  let line = escapeMeasurement(LongTermMeasurements.lifecycle)
  const tagSet: [string, string | undefined][] = [['action', r.action], ['enterprise', r.enterprise], ['office', r.office], ['subject', r.subject]]
  for (const [key, value] of tagSet) if (value !== undefined && value !== '') line += `,${key}=${escapeTag(value)}`
  const fieldSet: [string, string | undefined][] = [
    ['actor', r.actor],
    ['department', r.department],
    ['id', r.id],
    ['level', r.level],
    ['note', r.note],
    ['state', r.state],
    ['subject_id', r.subjectId],
  ]
  line += ' ' + fieldSet.filter(([, v]) => v !== undefined).map(([key, value]) => `${key}=${quoteString(value!)}`).join(',')
  return `${line} ${lifecycleTime(r.ts, r.id)}`
}

/** A statement for comparison with what SHOW CONTINUOUS QUERIES prints: no quotes, one space, lower case. */
function normalisedStatement(statement: string): string {
  return statement.replaceAll('"', '').replace(/\s+/g, ' ').trim().toLowerCase()
}

/** One device, within its office when the query names one (device ids are unique per office). */
/** The device's points; with `enterprises`, only those tagged with one of them (an empty list is handled by the caller). */
function deviceMatch(q: { device: string; office?: string | undefined; enterprises?: readonly string[] | undefined }): string {
  let match = `"device" = ${stringLit(q.device)}`
  if (q.office !== undefined) match = `"office" = ${stringLit(q.office)} AND ${match}`
  if (q.enterprises !== undefined) match += ` AND (${q.enterprises.map((e) => `"enterprise" = ${stringLit(e)}`).join(' OR ')})`
  return match
}

/** [from, to] in ms, inclusive of every point stamped within the `to` millisecond. */
function timeRange(from: number, to: number): string {
  return `time >= ${Math.floor(from)}ms AND time < ${Math.floor(to) + 1}ms`
}

/** Tags in key order (InfluxDB's advice for write speed); empty values are left out (invalid in line protocol). */
function tags(entries: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const key of Object.keys(entries).sort()) {
    const v = entries[key]
    if (v !== undefined && v !== '') out[key] = v
  }
  return out
}

function fields(entries: Record<string, string | number | undefined>): Record<string, string | number> {
  const out: Record<string, string | number> = {}
  for (const [key, v] of Object.entries(entries)) if (v !== undefined) out[key] = v
  return out
}

export function toPoint(e: Envelope): IPoint {
  const frame = { office: e.office, gateway: e.gateway, device: e.device, grid: e.grid }
  const timestamp = pointTime(e.ts, e.seq)
  switch (e.kind) {
    case 'reading':
      return {
        measurement: Measurements.reading,
        tags: tags({ ...frame, enterprise: e.enterprise, quantity: e.payload.quantity }),
        fields: fields({ value: e.payload.value, unit: e.payload.unit, id: e.id }),
        timestamp,
      }
    case 'scan':
      return {
        measurement: Measurements.scan,
        tags: tags({ ...frame, checkpoint: e.payload.checkpoint, method: e.payload.method }),
        fields: fields({ tag: e.payload.tag, staff: e.payload.staff, lat: e.payload.location?.lat, lon: e.payload.location?.lon, id: e.id }),
        timestamp,
      }
    case 'camera':
      return {
        measurement: Measurements.camera,
        tags: tags({ ...frame, event: e.payload.event }),
        fields: fields({
          confidence: e.payload.confidence,
          channel: e.payload.channel,
          region: e.payload.region,
          snapshot: e.payload.snapshot,
          id: e.id,
        }),
        timestamp,
      }
    case 'report':
      return {
        measurement: Measurements.report,
        tags: tags({ ...frame, type: e.payload.type, category: e.payload.category }),
        fields: fields({ text: e.payload.text, staff: e.payload.staff, lat: e.payload.location?.lat, lon: e.payload.location?.lon, photo: e.payload.photo, id: e.id }),
        timestamp,
      }
    case 'status':
      return {
        measurement: Measurements.status,
        tags: tags({ ...frame, state: e.payload.state }),
        fields: fields({ reason: e.payload.reason, id: e.id }),
        timestamp,
      }
    case 'alert': {
      const p = e.payload
      return {
        measurement: Measurements.alert,
        tags: tags({ ...frame, enterprise: e.enterprise, type: p.type, severity: p.severity, state: p.state, level: p.level }),
        fields: fields({
          suppressed: p.suppressed,
          alert_id: p.alertId,
          message: p.message,
          cause: p.cause,
          quantity: p.quantity,
          value: p.value,
          unit: p.unit,
          threshold: p.threshold,
          peak: p.peak,
          id: e.id,
        }),
        timestamp,
      }
    }
    case 'aggregate': {
      const p = e.payload
      return {
        measurement: Measurements.aggregate,
        tags: tags({ ...frame, enterprise: e.enterprise, quantity: p.quantity }),
        fields: fields({ min: p.min, max: p.max, mean: p.mean, count: p.count, unit: p.unit, to_ms: p.to, id: e.id }),
        timestamp,
      }
    }
    case 'incident': {
      const p = e.payload
      return {
        measurement: Measurements.incident,
        tags: tags({ ...frame, category: p.category, level: p.level }),
        fields: fields({
          incident_id: p.incidentId,
          description: p.description,
          reporter: p.reporter,
          lat: p.location?.lat,
          lon: p.location?.lon,
          photo: p.photo,
          cause: p.cause,
          id: e.id,
        }),
        timestamp,
      }
    }
    case 'gap': {
      const p = e.payload
      return {
        measurement: Measurements.gap,
        tags: tags({ ...frame, class: p.class, reason: p.reason }),
        fields: fields({ from_ms: p.from, to_ms: p.to, count: p.count, kinds: p.kinds.join(','), id: e.id }),
        timestamp,
      }
    }
  }
}

function alertRowFrom(r: Record<string, unknown> & { time: INanoDate }): AlertEventRow {
  const str = (k: string) => (typeof r[k] === 'string' && r[k] !== '' ? (r[k]) : undefined)
  const num = (k: string) => (typeof r[k] === 'number' ? (r[k]) : undefined)
  const optional = {
    enterprise: str('enterprise'),
    grid: str('grid'),
    level: str('level'),
    suppressed: num('suppressed'),
    cause: str('cause'),
    quantity: str('quantity'),
    value: num('value'),
    unit: str('unit'),
    threshold: num('threshold'),
    peak: num('peak'),
  }
  return {
    id: r.id as string,
    ts: sourceMs(r.time.getNanoTime()),
    office: r.office as string,
    gateway: r.gateway as string,
    device: r.device as string,
    alertId: r.alert_id as string,
    state: r.state as AlertEventRow['state'],
    type: r.type as string,
    severity: r.severity as AlertEventRow['severity'],
    message: r.message as string,
    ...Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)),
  }
}

/** A URL as it may be shown: `http://user:secret@db:8086/` becomes `http://db:8086/`. */
export function withoutCredentials(url: URL): string {
  const shown = new URL(url)
  shown.username = ''
  shown.password = ''
  return shown.toString()
}
