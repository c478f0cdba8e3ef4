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
 *   report         tags office, gateway, device, type, category         fields text, staff, lat, lon, id
 *   device_status  tags office, gateway, device, state                  fields reason, id
 *   alert_event    tags office, gateway, enterprise, device, type, severity, state
 *                  fields alert_id, message, cause, quantity, value, unit, threshold, peak, id
 *   data_gap       tags office, gateway, device, class, reason            fields from_ms, to_ms, count, kinds, id
 *   reading_1m     tags office, gateway, enterprise, device, quantity   fields min, max, mean, count, unit, to_ms, id
 *   incident       tags office, gateway, device, category, level        fields incident_id, description, reporter, lat, lon, photo, cause, id
 * Every measurement also carries the `grid` tag when the device has one.
 *
 * Idempotence: InfluxDB identifies a point by measurement, tag set and timestamp, and a second
 * write of the same point overwrites it. Every tag comes from the envelope, and the timestamp is
 * the envelope's source time in ms followed by six digits of its sequence (ts·10⁶ + seq mod 10⁶,
 * in ns). So a replay rewrites the very same point, while two envelopes of one device in one
 * millisecond remain two points. Sub-millisecond digits therefore carry no time meaning.
 */
import { InfluxDB, escape, type INanoDate, type IPoint } from 'influx'
import type { Envelope } from '../../contracts/envelope.ts'
import type { IngestStatus } from '../../contracts/ingest.ts'
import { StoreUnavailableError, type AlertEventQuery, type AlertEventRow, type EventStore, type GapQuery, type GapRow, type ReadingPoint, type SeriesQuery } from './store.ts'

export interface InfluxStoreOptions {
  /** e.g. http://127.0.0.1:8086 (credentials may be in the URL: http://user:pass@host:8086) */
  url: string
  database: string
  timeoutMs?: number
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

export class InfluxStore implements EventStore {
  readonly kind = 'influx'
  private readonly influx: InfluxDB
  private opened = false

  constructor(private readonly options: InfluxStoreOptions) {
    const url = new URL(options.url)
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
  }

  async open(): Promise<void> {
    await this.guard('create database', () => this.influx.createDatabase(this.options.database))
    this.opened = true
  }

  async write(envelopes: readonly Envelope[]): Promise<IngestStatus[]> {
    // InfluxDB may have been down when the API started; create the database on first success.
    if (!this.opened) await this.open()
    const points = envelopes.map(toPoint)
    await this.guard('write', () => this.influx.writePoints(points, { precision: 'n' }))
    // InfluxDB cannot tell a replay from a first write; both leave exactly one point.
    return envelopes.map(() => 'stored')
  }

  async readings(q: SeriesQuery): Promise<ReadingPoint[]> {
    let where = `"device" = ${escape.stringLit(q.device)} AND ${timeRange(q.from, q.to)}`
    if (q.quantity !== undefined) where += ` AND "quantity" = ${escape.stringLit(q.quantity)}`
    const rows = await this.guard('query', () =>
      this.influx.query<{ time: INanoDate; quantity: string; value: number; unit: string; id: string }>(
        `SELECT "value", "unit", "id", "quantity" FROM "${Measurements.reading}" WHERE ${where} ORDER BY time ASC LIMIT ${Math.floor(q.limit)}`,
      ),
    )
    return rows.map((r) => ({ ts: sourceMs(r.time.getNanoTime()), quantity: r.quantity, value: r.value, unit: r.unit ?? '', id: r.id }))
  }

  async alertEvents(q: AlertEventQuery): Promise<AlertEventRow[]> {
    let where = timeRange(q.from, q.to)
    if (q.office !== undefined) where = `"office" = ${escape.stringLit(q.office)} AND ${where}`
    const rows = await this.guard('query', () =>
      this.influx.query<Record<string, unknown> & { time: INanoDate }>(
        `SELECT * FROM "${Measurements.alert}" WHERE ${where} ORDER BY time ASC LIMIT ${Math.floor(q.limit)}`,
      ),
    )
    return rows.map(alertRowFrom)
  }

  async gaps(q: GapQuery): Promise<GapRow[]> {
    let where = timeRange(q.from, q.to)
    if (q.office !== undefined) where = `"office" = ${escape.stringLit(q.office)} AND ${where}`
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

  async ping(): Promise<void> {
    const hosts = await this.influx.ping(this.options.timeoutMs ?? 5000)
    if (!hosts.some((h) => h.online)) throw new StoreUnavailableError(`InfluxDB at ${this.options.url} does not answer /ping`)
  }

  async close(): Promise<void> {}

  private async guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      throw new StoreUnavailableError(`InfluxDB ${what} failed: ${(err as Error).message}`, { cause: err })
    }
  }
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
        fields: fields({ tag: e.payload.tag, staff: e.payload.staff, id: e.id }),
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
        fields: fields({ text: e.payload.text, staff: e.payload.staff, lat: e.payload.location?.lat, lon: e.payload.location?.lon, id: e.id }),
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
