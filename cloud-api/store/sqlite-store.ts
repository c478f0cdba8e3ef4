/**
 * Embedded SQLite event store: the default, so the demo and small deployments need nothing
 * installed. Every envelope is kept whole in `envelopes` (whose primary key is the envelope id,
 * which is what makes ingest idempotent) and projected into a table per queried kind.
 */
import Database from 'better-sqlite3'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Envelope } from '../../contracts/envelope.ts'
import { Checkpointer } from '../../common/checkpointer.ts'
import { WalSync, type SyncFn } from '../../common/wal-sync.ts'
import type { IngestStatus } from '../../contracts/ingest.ts'
import {
  alertEventRow,
  gapRow,
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

/**
 * Breaks ties between rows of the same millisecond in the gateway's sequence order: ids are
 * `gateway:seq`, so compare the number after the colon, numerically.
 */
const BY_SEQ = "CAST(substr(id, instr(id, ':') + 1) AS INTEGER)"

/** How long one write transaction may hold the event loop before the rest of its batch waits a turn. */
const WRITE_SLICE_MS = 1.5

export class SqliteStore implements EventStore {
  readonly kind = 'sqlite'
  private db: Database.Database | undefined
  private stmt: ReturnType<SqliteStore['prepare']> | undefined
  private checkpointer: Checkpointer | undefined
  private walSync: WalSync | undefined

  /** `path` of ':memory:' gives a throwaway store; `syncWal` replaces fs.fdatasync in tests. */
  constructor(
    private readonly path: string,
    private readonly options: { syncWal?: SyncFn } = {},
  ) {}

  async open(): Promise<void> {
    if (this.path !== ':memory:') mkdirSync(dirname(this.path), { recursive: true })
    const db = new Database(this.path)
    db.pragma('journal_mode = WAL')
    // The gateway deletes its copy once we answer, so our commit must survive power loss too:
    // every write is fsynced before it returns. NORMAL plus walSync's fsync off the event loop
    // gives that without FULL's fsync on it (common/wal-sync.ts), and one fsync for all of a
    // batch's slices instead of one each.
    db.pragma('synchronous = NORMAL')
    this.walSync = new WalSync(this.path, this.options.syncWal)
    if (this.path !== ':memory:') {
      // As in the gateway outbox: checkpoints on a worker thread, not inside an ingest request.
      this.checkpointer = new Checkpointer(this.path, 250, undefined, { db })
    }
    // A database from before the readings' office column: add it and fill it from the envelopes.
    const readingsCols = db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('readings')").all().map((c) => c.name)
    if (readingsCols.length > 0 && !readingsCols.includes('office')) {
      // One transaction: a crash half way must not leave the column added but empty for good.
      db.transaction(() =>
        db.exec(`ALTER TABLE readings ADD COLUMN office TEXT NOT NULL DEFAULT '';
          UPDATE readings SET office = coalesce((SELECT office FROM envelopes WHERE envelopes.id = readings.id), '')`),
      )()
    }
    // A database from before the readings' enterprise column: the same, from the envelopes' own
    // `enterprise`, so that history recorded for a sensor's former owner stays that owner's.
    if (readingsCols.length > 0 && !readingsCols.includes('enterprise')) {
      db.transaction(() =>
        db.exec(`ALTER TABLE readings ADD COLUMN enterprise TEXT;
          UPDATE readings SET enterprise = (SELECT body ->> '$.enterprise' FROM envelopes WHERE envelopes.id = readings.id)`),
      )()
    }
    // A database from before the scans projection: fill it from the envelopes once, below.
    const scansToFill = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'scans'").get() === undefined
    // The schema and the scans backfill commit together: a crash between them would leave an
    // empty scans table that is never filled.
    db.exec('BEGIN')
    db.exec(`
      CREATE TABLE IF NOT EXISTS envelopes (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        office TEXT NOT NULL,
        device TEXT NOT NULL,
        ts INTEGER NOT NULL,
        body TEXT NOT NULL
      ) STRICT;
      CREATE TABLE IF NOT EXISTS readings (
        device TEXT NOT NULL,
        office TEXT NOT NULL DEFAULT '',
        quantity TEXT NOT NULL,
        ts INTEGER NOT NULL,
        value REAL NOT NULL,
        unit TEXT NOT NULL,
        id TEXT NOT NULL,
        -- the enterprise the envelope named: the device's owner when it measured this
        enterprise TEXT
      ) STRICT;
      CREATE INDEX IF NOT EXISTS readings_by_device ON readings (device, ts);
      CREATE TABLE IF NOT EXISTS alert_events (
        id TEXT PRIMARY KEY,
        ts INTEGER NOT NULL,
        office TEXT NOT NULL,
        row TEXT NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS alert_events_by_time ON alert_events (ts);
      CREATE INDEX IF NOT EXISTS alert_events_by_office ON alert_events (office, ts);
      CREATE TABLE IF NOT EXISTS gaps (
        id TEXT PRIMARY KEY,
        ts INTEGER NOT NULL,
        office TEXT NOT NULL,
        row TEXT NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS gaps_by_time ON gaps (ts);
      CREATE TABLE IF NOT EXISTS scans (
        id TEXT PRIMARY KEY,
        ts INTEGER NOT NULL,
        office TEXT NOT NULL,
        row TEXT NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS scans_by_office ON scans (office, ts);
      CREATE TABLE IF NOT EXISTS lifecycle (
        id TEXT PRIMARY KEY,
        ts INTEGER NOT NULL,
        office TEXT NOT NULL,
        subject_id TEXT NOT NULL,
        -- the n of an id ending in ':<n>' (the center's 'lc:<epoch>:<seq>'), to order one millisecond's rows
        seq INTEGER NOT NULL,
        row TEXT NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS lifecycle_by_time ON lifecycle (ts);
      CREATE INDEX IF NOT EXISTS lifecycle_by_office ON lifecycle (office, ts);
      CREATE INDEX IF NOT EXISTS lifecycle_by_subject ON lifecycle (subject_id, ts);
    `)
    if (scansToFill) {
      // scanRow in SQL; json_patch onto {} drops the keys of absent (null) optional fields.
      db.exec(`
        INSERT OR IGNORE INTO scans (id, ts, office, row)
        SELECT id, ts, office, json_patch('{}', json_object(
          'id', id, 'ts', ts, 'office', office, 'device', device,
          'tag', json_extract(body, '$.payload.tag'),
          'checkpoint', json_extract(body, '$.payload.checkpoint'),
          'staff', json_extract(body, '$.payload.staff'),
          'method', json_extract(body, '$.payload.method'),
          'location', json_extract(body, '$.payload.location')))
        FROM envelopes WHERE kind = 'scan'
      `)
    }
    db.exec('COMMIT')
    this.db = db
    this.stmt = this.prepare(db)
  }

  private prepare(db: Database.Database) {
    return {
      envelope: db.prepare('INSERT OR IGNORE INTO envelopes (id, kind, office, device, ts, body) VALUES (?, ?, ?, ?, ?, ?)'),
      reading: db.prepare('INSERT INTO readings (device, office, quantity, ts, value, unit, id, enterprise) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      alertEvent: db.prepare('INSERT OR IGNORE INTO alert_events (id, ts, office, row) VALUES (?, ?, ?, ?)'),
      gap: db.prepare('INSERT OR IGNORE INTO gaps (id, ts, office, row) VALUES (?, ?, ?, ?)'),
      scan: db.prepare('INSERT OR IGNORE INTO scans (id, ts, office, row) VALUES (?, ?, ?, ?)'),
      lifecycle: db.prepare('INSERT OR IGNORE INTO lifecycle (id, ts, office, subject_id, seq, row) VALUES (?, ?, ?, ?, ?, ?)'),
      series: db.prepare<{ size: number; device: string; office: string | null; quantity: string; from: number; to: number; enterprises: string | null }, SeriesBucket>(
        `SELECT ts - ts % @size AS ts, avg(value) AS mean, min(value) AS min, max(value) AS max, count(*) AS count
           FROM readings WHERE device = @device AND (@office IS NULL OR office = @office) AND quantity = @quantity AND ts >= @from AND ts <= @to
             AND (@enterprises IS NULL OR enterprise IN (SELECT value FROM json_each(@enterprises)))
           GROUP BY 1 ORDER BY 1`,
      ),
    }
  }

  private get ready() {
    if (!this.db || !this.stmt) throw new StoreUnavailableError('sqlite store is not open')
    return { db: this.db, stmt: this.stmt }
  }

  /**
   * Writes a batch in transactions of at most `WRITE_SLICE_MS` each, and lets the event loop run
   * between them. better-sqlite3 is synchronous, so one 500-envelope transaction held the center
   * for about 5 ms, and a live alert from another gateway (or this one's urgent lane) waited
   * behind it. Each slice is a transaction of its own, and the batch is answered after one fsync
   * that covers them all; a crash between slices leaves the rest for the gateway's resend, which
   * the envelope ids make harmless.
   */
  async write(envelopes: readonly Envelope[]): Promise<IngestStatus[]> {
    const statuses: IngestStatus[] = []
    while (statuses.length < envelopes.length) {
      if (statuses.length > 0) await new Promise<void>((resolve) => setImmediate(resolve))
      this.writeSlice(envelopes, statuses)
    }
    await this.durable()
    return statuses
  }

  /** Waits until what was committed is on disk; a failed fsync is the store failing. */
  private async durable(): Promise<void> {
    // Closed (or closing) after the commit: nothing may be answered as stored without its fsync.
    if (!this.walSync) throw new StoreUnavailableError('sqlite store is closed')
    try {
      await this.walSync.durable()
    } catch (err) {
      throw new StoreUnavailableError(`sqlite fsync failed: ${(err as Error).message}`, { cause: err })
    }
  }

  /** Writes from `statuses.length` on, in one transaction, until the slice's time is up. */
  private writeSlice(envelopes: readonly Envelope[], statuses: IngestStatus[]): void {
    const { db, stmt } = this.ready
    const started = performance.now()
    const first = statuses.length
    try {
      db.transaction(() => {
        for (let i = first; i < envelopes.length; i++) {
          // The clock is read every 32 envelopes: often enough, and cheap.
          if (i % 32 === 0 && i > first && performance.now() - started > WRITE_SLICE_MS) break
          const e = envelopes[i]
          const fresh = stmt.envelope.run(e.id, e.kind, e.office, e.device, e.ts, JSON.stringify(e)).changes === 1
          statuses.push(fresh ? 'stored' : 'duplicate')
          if (!fresh) continue
          if (e.kind === 'reading') {
            stmt.reading.run(e.device, e.office, e.payload.quantity, e.ts, e.payload.value, e.payload.unit, e.id, e.enterprise ?? null)
          } else if (e.kind === 'alert') {
            stmt.alertEvent.run(e.id, e.ts, e.office, JSON.stringify(alertEventRow(e)))
          } else if (e.kind === 'gap') {
            stmt.gap.run(e.id, e.ts, e.office, JSON.stringify(gapRow(e)))
          } else if (e.kind === 'scan') {
            stmt.scan.run(e.id, e.ts, e.office, JSON.stringify(scanRow(e)))
          }
        }
      })()
    } catch (err) {
      throw new StoreUnavailableError(`sqlite write failed: ${(err as Error).message}`, { cause: err })
    }
  }

  async readings(q: SeriesQuery): Promise<ReadingPoint[]> {
    const { db } = this.ready
    const args: (string | number)[] = [q.device, q.from, q.to]
    let sql = 'SELECT ts, quantity, value, unit, id FROM readings WHERE device = ? AND ts >= ? AND ts <= ?'
    if (q.office !== undefined) {
      sql += ' AND office = ?'
      args.push(q.office)
    }
    if (q.quantity !== undefined) {
      sql += ' AND quantity = ?'
      args.push(q.quantity)
    }
    if (q.enterprises !== undefined) {
      sql += ' AND enterprise IN (SELECT value FROM json_each(?))'
      args.push(JSON.stringify(q.enterprises))
    }
    sql += ` ORDER BY ts, ${BY_SEQ} LIMIT ?`
    args.push(q.limit)
    return db.prepare(sql).all(...args) as ReadingPoint[]
  }

  async series(q: AggregateQuery): Promise<SeriesBucket[]> {
    const { stmt } = this.ready
    return stmt.series.all({
      size: windowMs[q.window],
      device: q.device,
      office: q.office ?? null,
      quantity: q.quantity,
      from: q.from,
      to: q.to,
      enterprises: q.enterprises !== undefined ? JSON.stringify(q.enterprises) : null,
    })
  }

  async scans(q: ScanQuery): Promise<ScanRow[]> {
    return this.officeRows<ScanRow>('scans', q)
  }

  async writeLifecycle(rows: readonly LifecycleRow[]): Promise<void> {
    const { db, stmt } = this.ready
    try {
      db.transaction(() => {
        for (const r of rows) stmt.lifecycle.run(r.id, r.ts, r.office, r.subjectId, idSeq(r.id), JSON.stringify(r))
      })()
    } catch (err) {
      throw new StoreUnavailableError(`sqlite lifecycle write failed: ${(err as Error).message}`, { cause: err })
    }
    await this.durable()
  }

  async lifecycle(q: LifecycleQuery): Promise<LifecycleRow[]> {
    const { db } = this.ready
    const args: (string | number)[] = [q.from, q.to]
    let sql = 'SELECT row FROM lifecycle WHERE ts >= ? AND ts <= ?'
    if (q.office !== undefined) {
      sql += ' AND office = ?'
      args.push(q.office)
    }
    if (q.subjectId !== undefined) {
      sql += ' AND subject_id = ?'
      args.push(q.subjectId)
    }
    sql += ' ORDER BY ts, seq, id LIMIT ?'
    args.push(q.limit)
    return (db.prepare(sql).all(...args) as { row: string }[]).map((r) => JSON.parse(r.row) as LifecycleRow)
  }

  async alertEvents(q: AlertEventQuery): Promise<AlertEventRow[]> {
    return this.officeRows<AlertEventRow>('alert_events', q)
  }

  async gaps(q: GapQuery): Promise<GapRow[]> {
    return this.officeRows<GapRow>('gaps', q)
  }

  /** Rows of a projection table (alert_events, gaps, scans) in [from, to], optionally of one office. */
  private officeRows<T>(table: 'alert_events' | 'gaps' | 'scans', q: { office?: string; from: number; to: number; limit: number }): T[] {
    const { db } = this.ready
    const args: (string | number)[] = [q.from, q.to]
    let sql = `SELECT row FROM ${table} WHERE ts >= ? AND ts <= ?`
    if (q.office !== undefined) {
      sql += ' AND office = ?'
      args.push(q.office)
    }
    sql += ` ORDER BY ts, ${BY_SEQ} LIMIT ?`
    args.push(q.limit)
    return (db.prepare(sql).all(...args) as { row: string }[]).map((r) => JSON.parse(r.row) as T)
  }

  async ping(): Promise<void> {
    this.ready.db.prepare('SELECT 1').get()
    // After a failed fsync every write is refused (common/wal-sync.ts): not ready until a restart.
    const failure = this.walSync?.failure
    if (failure) throw new StoreUnavailableError(failure.message, { cause: failure })
  }

  async close(): Promise<void> {
    await this.walSync?.close()
    this.walSync = undefined
    await this.checkpointer?.close()
    this.checkpointer = undefined
    this.db?.close()
    this.db = undefined
    this.stmt = undefined
  }
}

/** A scan as the scans projection keeps it. */
function scanRow(e: Envelope & { kind: 'scan' }): ScanRow {
  const p = e.payload
  return {
    id: e.id,
    ts: e.ts,
    office: e.office,
    device: e.device,
    tag: p.tag,
    ...(p.checkpoint !== undefined ? { checkpoint: p.checkpoint } : {}),
    ...(p.staff !== undefined ? { staff: p.staff } : {}),
    method: p.method,
    ...(p.location !== undefined ? { location: p.location } : {}),
  }
}

/**
 * The n of an id ending in `:<n>`, else 0: orders one millisecond's lifecycle rows as InfluxStore's
 * lifecycleTime does for ids of one prefix, such as the center's `lc:<epoch>:<seq>`.
 */
function idSeq(id: string): number {
  const m = /:(\d+)$/.exec(id)
  return m ? Number(m[1].slice(-15)) : 0
}
