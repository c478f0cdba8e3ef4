/**
 * The durable outbox: every envelope the gateway accepts is committed here before the device
 * is acknowledged, and leaves only when the cloud has acknowledged its id.
 *
 * Is:
 * - SQLite in WAL mode with `synchronous=FULL`: a commit has reached the disk (fsync of the WAL)
 *   before `append()` resolves, so it survives a process kill and a power cut.
 * - Group commit: appends arriving in the same event-loop turn share one transaction, so an fsync
 *   is paid per batch, not per message.
 * - A monotonic sequence: `seq` is the envelope's sequence and row key. The highest sequence ever
 *   committed is kept in `meta`, so deleting forwarded rows never lets a number be reused.
 * - Rule state (active alarms) is written in the same transaction as the alerts it caused, so after
 *   a crash the gateway neither re-raises an alarm nor forgets one.
 *
 * Is not:
 * - Protection against the disk itself failing: there is one copy.
 * - Bounded yet: the disk quota and class-aware eviction are tracked in the store-and-forward issue.
 */
import Database from 'better-sqlite3'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { envelopeId, type Envelope, type EnvelopeDraft, type EnvelopeKind } from '../../contracts/envelope.ts'
import { silentLogger, type Logger } from '../../common/logger.ts'

/** Forwarding order: lower goes first. SOS and alerts, then events, then aggregates, then raw telemetry. */
export const Priority = { alert: 0, event: 1, aggregate: 2, telemetry: 3 } as const
export type PriorityClass = keyof typeof Priority
export const priorityNames = Object.keys(Priority) as PriorityClass[]

export function priorityOf(kind: EnvelopeKind): number {
  if (kind === 'alert') return Priority.alert
  if (kind === 'reading') return Priority.telemetry
  return Priority.event
}

export interface OutboxRow {
  seq: number
  id: string
  priority: number
  /** The envelope as JSON, exactly as committed, so a replay sends the same bytes. */
  body: string
}

/** A rule-state change to commit with the envelopes: `value: null` deletes the key. */
export interface StateWrite {
  key: string
  value: string | null
}

export interface OutboxStats {
  pending: Record<PriorityClass, number>
  oldestPendingMs: number | null
  lastSeq: number
}

export interface OutboxOptions {
  path: string
  gatewayId: string
  logger?: Logger
  /** A group commit never holds more rows than this. */
  maxBatchRows?: number
  /** Called after each commit with the committed envelopes (metrics, forwarder wake-up). */
  onCommit?: (envelopes: readonly Envelope[], elapsedMs: number) => void
}

interface PendingAppend {
  envelopes: Envelope[]
  state: StateWrite[]
  resolve: () => void
  reject: (err: Error) => void
}

export class Outbox {
  readonly path: string
  private readonly db: Database.Database
  private readonly gatewayId: string
  private readonly log: Logger
  private readonly maxBatchRows: number
  private readonly onCommit: OutboxOptions['onCommit']
  private lastReserved: number
  private lastCommitted: number
  private pending: PendingAppend[] = []
  private pendingRows = 0
  private flushScheduled = false
  private closed = false
  private readonly stmt: ReturnType<Outbox['prepare']>

  constructor(options: OutboxOptions) {
    this.path = options.path
    this.gatewayId = options.gatewayId
    this.log = options.logger ?? silentLogger()
    this.maxBatchRows = options.maxBatchRows ?? 500
    this.onCommit = options.onCommit
    mkdirSync(dirname(options.path), { recursive: true })
    this.db = new Database(options.path)
    this.db.pragma('journal_mode = WAL')
    // FULL: the WAL is fsynced at every commit. NORMAL would be durable against a process crash but
    // could lose the last commits on power loss, and we acknowledge devices after commit.
    this.db.pragma('synchronous = FULL')
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        priority INTEGER NOT NULL,
        kind TEXT NOT NULL,
        device TEXT NOT NULL,
        ts INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        body TEXT NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS outbox_by_priority ON outbox (priority, seq);
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
      CREATE TABLE IF NOT EXISTS rule_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
      CREATE TABLE IF NOT EXISTS dead_letter (
        seq INTEGER PRIMARY KEY,
        body TEXT NOT NULL,
        reason TEXT NOT NULL,
        at INTEGER NOT NULL
      ) STRICT;
    `)
    this.stmt = this.prepare()
    const meta = this.stmt.getMeta.get('last_seq') as { value: string } | undefined
    const maxRow = (this.db.prepare('SELECT max(seq) AS m FROM outbox').get() as { m: number | null }).m ?? 0
    this.lastCommitted = Math.max(meta ? Number(meta.value) : 0, maxRow)
    this.lastReserved = this.lastCommitted
    const gatewayRow = this.stmt.getMeta.get('gateway_id') as { value: string } | undefined
    if (gatewayRow && gatewayRow.value !== this.gatewayId) {
      // Ids are gateway:seq; a renamed gateway continuing another's sequence would still be unique,
      // but the operator should know the file came from elsewhere.
      this.log.warn({ previous: gatewayRow.value }, 'outbox was written by another gateway id')
    }
    this.stmt.setMeta.run('gateway_id', this.gatewayId)
  }

  private prepare() {
    return {
      insert: this.db.prepare(
        'INSERT INTO outbox (seq, id, priority, kind, device, ts, created_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      getMeta: this.db.prepare('SELECT value FROM meta WHERE key = ?'),
      setMeta: this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      putState: this.db.prepare('INSERT INTO rule_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      deleteState: this.db.prepare('DELETE FROM rule_state WHERE key = ?'),
      peek: this.db.prepare('SELECT seq, id, priority, body FROM outbox ORDER BY priority, seq LIMIT ?'),
      delete: this.db.prepare('DELETE FROM outbox WHERE seq = ?'),
      toDeadLetter: this.db.prepare(
        'INSERT OR REPLACE INTO dead_letter (seq, body, reason, at) SELECT seq, body, ?, ? FROM outbox WHERE seq = ?',
      ),
    }
  }

  /** Gives a draft its sequence and id. Numbers are handed out in call order. */
  stamp<D extends EnvelopeDraft>(draft: D): D & { id: string; seq: number } {
    const seq = ++this.lastReserved
    return { ...draft, id: envelopeId(this.gatewayId, seq), seq }
  }

  /**
   * Commits envelopes (already stamped, in stamp order) and rule-state changes together.
   * Resolves once they are on disk.
   */
  append(envelopes: Envelope[], state: StateWrite[] = []): Promise<void> {
    if (this.closed) return Promise.reject(new Error('outbox is closed'))
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ envelopes, state, resolve, reject })
      this.pendingRows += envelopes.length
      if (this.pendingRows >= this.maxBatchRows) {
        this.flush()
      } else if (!this.flushScheduled) {
        this.flushScheduled = true
        setImmediate(() => this.flush())
      }
    })
  }

  /** Commits whatever is pending now. Normally called by the scheduler; exposed for shutdown. */
  flush(): void {
    this.flushScheduled = false
    if (this.pending.length === 0) return
    const batch = this.pending
    this.pending = []
    this.pendingRows = 0
    const started = performance.now()
    const committed: Envelope[] = []
    try {
      const now = Date.now()
      let maxSeq = this.lastCommitted
      this.db.transaction(() => {
        for (const item of batch) {
          for (const e of item.envelopes) {
            this.stmt.insert.run(e.seq, e.id, priorityOf(e.kind), e.kind, e.device, e.ts, now, JSON.stringify(e))
            if (e.seq > maxSeq) maxSeq = e.seq
            committed.push(e)
          }
          for (const w of item.state) {
            if (w.value === null) this.stmt.deleteState.run(w.key)
            else this.stmt.putState.run(w.key, w.value)
          }
        }
        this.stmt.setMeta.run('last_seq', String(maxSeq))
      })()
      this.lastCommitted = maxSeq
    } catch (err) {
      this.log.error({ err, code: 'GW_OUTBOX_COMMIT_FAILED', rows: committed.length }, 'outbox commit failed')
      for (const item of batch) item.reject(err as Error)
      return
    }
    for (const item of batch) item.resolve()
    this.onCommit?.(committed, performance.now() - started)
  }

  /** The next rows to forward, most urgent class first, oldest first within a class. */
  peek(limit: number): OutboxRow[] {
    return this.stmt.peek.all(limit) as OutboxRow[]
  }

  /** Deletes rows the cloud has acknowledged. */
  ack(seqs: readonly number[]): void {
    if (seqs.length === 0) return
    this.db.transaction(() => {
      for (const seq of seqs) this.stmt.delete.run(seq)
    })()
  }

  /**
   * Moves a row the cloud will never accept (it names the envelope as invalid) out of the way, so
   * one poison envelope cannot block every envelope behind it. It stays on disk for an engineer.
   */
  deadLetter(seq: number, reason: string): void {
    this.db.transaction(() => {
      this.stmt.toDeadLetter.run(reason, Date.now(), seq)
      this.stmt.delete.run(seq)
    })()
  }

  deadLetterCount(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM dead_letter').get() as { n: number }).n
  }

  /** All persisted rule state, for the rules engine to resume from. */
  loadState(): Map<string, string> {
    const rows = this.db.prepare('SELECT key, value FROM rule_state').all() as { key: string; value: string }[]
    return new Map(rows.map((r) => [r.key, r.value]))
  }

  stats(): OutboxStats {
    const pending = Object.fromEntries(priorityNames.map((n) => [n, 0])) as Record<PriorityClass, number>
    const rows = this.db
      .prepare('SELECT priority, count(*) AS n FROM outbox GROUP BY priority')
      .all() as { priority: number; n: number }[]
    for (const r of rows) {
      const name = priorityNames[r.priority]
      if (name) pending[name] = r.n
    }
    const oldest = (this.db.prepare('SELECT min(created_at) AS t FROM outbox').get() as { t: number | null }).t
    return { pending, oldestPendingMs: oldest === null ? null : Math.max(0, Date.now() - oldest), lastSeq: this.lastCommitted }
  }

  pendingCount(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n
  }

  /** Commits what is pending, then closes the database. */
  close(): void {
    if (this.closed) return
    this.flush()
    this.closed = true
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)')
    } finally {
      this.db.close()
    }
  }
}
