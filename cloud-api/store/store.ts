/**
 * The center's event store: one interface, two implementations (InfluxDB for production, an
 * embedded SQLite file so the demo runs anywhere), one contract suite (test/contract/store.ts)
 * that both must pass.
 */
import type { Envelope, Severity } from '../../contracts/envelope.ts'
import type { IngestStatus } from '../../contracts/ingest.ts'
import type { SchemaProblem } from '../../contracts/validate.ts'

export interface ReadingPoint {
  ts: number
  quantity: string
  value: number
  unit: string
  id: string
}

export interface SeriesQuery {
  device: string
  /** The device's office: device ids are unique within an office, not across offices. */
  office?: string
  /** Inclusive bounds, epoch ms. */
  from: number
  to: number
  quantity?: string
  /**
   * Only readings recorded while the device belonged to one of these enterprises (each reading
   * keeps the enterprise its envelope named). A sensor moved to another enterprise does not take
   * its history along: what it measured for the old owner stays the old owner's. Empty matches
   * nothing; absent matches every reading.
   */
  enterprises?: readonly string[]
  limit: number
}

/** One alert event as stored: the alert payload flattened with the envelope's frame. */
export interface AlertEventRow {
  id: string
  ts: number
  office: string
  gateway: string
  device: string
  enterprise?: string
  grid?: string
  alertId: string
  state: 'raised' | 'updated' | 'cleared'
  type: string
  severity: Severity
  message: string
  cause?: string
  quantity?: string
  value?: number
  unit?: string
  threshold?: number
  peak?: number
  level?: 'grid' | 'community' | 'street'
  suppressed?: number
}

/** A data-gap record as stored: what a gateway had to drop, for which device, and why. */
export interface GapRow {
  id: string
  ts: number
  office: string
  gateway: string
  device: string
  class: 'telemetry' | 'aggregate' | 'event'
  reason: 'quota' | 'ttl'
  from: number
  to: number
  count: number
  kinds: string[]
}

export interface GapQuery {
  office?: string
  /** Bounds on the time the gap was recorded (its `ts`), inclusive, epoch ms. */
  from: number
  to: number
  limit: number
}

export interface AlertEventQuery {
  office?: string
  from: number
  to: number
  limit: number
}

export type SeriesWindow = '1m' | '1h' | '1d'
export const windowMs: Record<SeriesWindow, number> = { '1m': 60_000, '1h': 3_600_000, '1d': 86_400_000 }

export interface AggregateQuery {
  device: string
  /** The device's office: device ids are unique within an office, not across offices. */
  office?: string
  quantity: string
  /** As in SeriesQuery: only readings recorded under one of these enterprises. */
  enterprises?: readonly string[]
  /** Inclusive bounds, epoch ms. Buckets are aligned to the window in UTC (epoch multiples). */
  from: number
  to: number
  window: SeriesWindow
}

/** One window of one device's quantity; windows with no reading are left out. */
export interface SeriesBucket {
  /** Start of the window, epoch ms. */
  ts: number
  mean: number
  min: number
  max: number
  count: number
}

/** A scan as stored, for patrol compliance. */
export interface ScanRow {
  id: string
  ts: number
  office: string
  device: string
  tag: string
  checkpoint?: string
  staff?: string
  method: string
  location?: { lat: number; lon: number }
}

export interface ScanQuery {
  office: string
  from: number
  to: number
  limit: number
}

/**
 * One step of an alert's or incident's lifecycle at the center (acknowledged, assigned, escalated,
 * ...): the audit trail. The center's own state database is authoritative for the current state;
 * every transition is also written here so the trail lives with the rest of the history.
 */
export interface LifecycleRow {
  /** Unique per transition, e.g. `act:<case id>:<n>`; writing the same id again leaves one copy. */
  id: string
  ts: number
  office: string
  enterprise?: string
  subject: 'alert' | 'incident'
  subjectId: string
  action: string
  /** The user name, or `system` (escalation) or `gateway:<id>` (auto-clear). */
  actor: string
  /** State after the transition. */
  state: string
  note?: string
  department?: string
  level?: string
}

export interface LifecycleQuery {
  office?: string
  subjectId?: string
  from: number
  to: number
  limit: number
}

/** The store could not be reached or failed: the API answers 503 and the gateway retries. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StoreUnavailableError'
  }
}

export type RejectReason = 'unparsable' | 'field_type_conflict' | 'beyond_retention' | 'limit_exceeded' | 'too_large' | 'other'

/**
 * The store refused points of a write for a reason of the points or of the database (InfluxDB: an
 * HTTP 4xx other than auth and a missing database), as opposed to being unreachable. A kind of
 * StoreUnavailableError, so that code knowing only that one still keeps the batch (503).
 */
export class StoreRejectedError extends StoreUnavailableError {
  constructor(
    message: string,
    /** The store's answer (InfluxDB's HTTP status). */
    readonly status: number,
    readonly reason: RejectReason,
    /** Points refused: the lines named once settled, or else InfluxDB's own `dropped=N`, when it says. */
    readonly dropped: number | undefined,
    /** The envelopes at fault, where InfluxDB names them; paths are `/envelopes/<index in the batch>`. */
    readonly problems: SchemaProblem[],
  ) {
    super(message)
    this.name = 'StoreRejectedError'
  }
}

export interface EventStore {
  readonly kind: 'sqlite' | 'influx'
  open(): Promise<void>
  /**
   * Stores a batch. Idempotent by envelope id: writing an envelope again leaves one copy. Returns
   * one status per envelope, in order. Throws StoreUnavailableError when nothing could be written.
   */
  write(envelopes: readonly Envelope[]): Promise<IngestStatus[]>
  /** Readings of one device in [from, to], oldest first. */
  readings(query: SeriesQuery): Promise<ReadingPoint[]>
  /** Alert events in [from, to], oldest first. */
  alertEvents(query: AlertEventQuery): Promise<AlertEventRow[]>
  /** Data-gap records in [from, to], oldest first. */
  gaps(query: GapQuery): Promise<GapRow[]>
  /** Per-window mean, min, max and count of one device's quantity in [from, to], oldest first. */
  series(query: AggregateQuery): Promise<SeriesBucket[]>
  /** Scans of one office in [from, to], oldest first. */
  scans(query: ScanQuery): Promise<ScanRow[]>
  /** Appends lifecycle transitions (idempotent by row id). Throws StoreUnavailableError on failure. */
  writeLifecycle(rows: readonly LifecycleRow[]): Promise<void>
  /** Lifecycle transitions in [from, to], oldest first, optionally of one office or one subject. */
  lifecycle(query: LifecycleQuery): Promise<LifecycleRow[]>
  /** Resolves when the store answers; throws StoreUnavailableError otherwise. */
  ping(): Promise<void>
  close(): Promise<void>
}

export function alertEventRow(e: Envelope & { kind: 'alert' }): AlertEventRow {
  const { alertId, state, type, severity, message, cause, quantity, value, unit, threshold, peak, level, suppressed } = e.payload
  return {
    id: e.id,
    ts: e.ts,
    office: e.office,
    gateway: e.gateway,
    device: e.device,
    ...(e.enterprise !== undefined ? { enterprise: e.enterprise } : {}),
    ...(e.grid !== undefined ? { grid: e.grid } : {}),
    alertId,
    state,
    type,
    severity,
    message,
    ...(cause !== undefined ? { cause } : {}),
    ...(quantity !== undefined ? { quantity } : {}),
    ...(value !== undefined ? { value } : {}),
    ...(unit !== undefined && unit !== '' ? { unit } : {}),
    ...(threshold !== undefined ? { threshold } : {}),
    ...(peak !== undefined ? { peak } : {}),
    ...(level !== undefined ? { level } : {}),
    ...(suppressed !== undefined ? { suppressed } : {}),
  }
}

export function gapRow(e: Envelope & { kind: 'gap' }): GapRow {
  const p = e.payload
  return {
    id: e.id,
    ts: e.ts,
    office: e.office,
    gateway: e.gateway,
    device: e.device,
    class: p.class,
    reason: p.reason,
    from: p.from,
    to: p.to,
    count: p.count,
    kinds: p.kinds,
  }
}
