/**
 * Every raw reading, kept on the gateway for `rawRetentionDays` and queryable at GET /v1/raw, so
 * an engineer or inspector on site can see what report-by-exception did not send.
 *
 * Its own SQLite file with `synchronous=NORMAL`: this is local history, not part of the
 * acknowledgement promise (the outbox is), so it does not pay an fsync per batch. Rows are written
 * in batches every 200 ms.
 */
import Database from 'better-sqlite3'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import type { ReadingEnvelope } from '../../contracts/envelope.ts'

export interface RawPoint {
  ts: number
  quantity: string
  value: number
  unit: string
}

const FLUSH_MS = 200
const DAY = 86_400_000

export class RawStore {
  private readonly db: Database.Database
  private readonly insert: Database.Statement
  private buffer: ReadingEnvelope[] = []
  private timer: NodeJS.Timeout | undefined
  private lastPrune = 0

  constructor(
    path: string,
    private readonly retentionDays: number,
  ) {
    mkdirSync(dirname(path), { recursive: true })
    this.db = new Database(path)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('synchronous = NORMAL')
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS raw (device TEXT NOT NULL, quantity TEXT NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL, unit TEXT NOT NULL) STRICT;
      CREATE INDEX IF NOT EXISTS raw_by_device ON raw (device, ts);
      CREATE INDEX IF NOT EXISTS raw_by_time ON raw (ts);
    `)
    this.insert = this.db.prepare('INSERT INTO raw (device, quantity, ts, value, unit) VALUES (?, ?, ?, ?, ?)')
  }

  add(e: ReadingEnvelope): void {
    if (this.retentionDays <= 0) return
    this.buffer.push(e)
    this.timer ??= setTimeout(() => this.flush(), FLUSH_MS)
  }

  flush(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.buffer.length === 0) return
    const rows = this.buffer
    this.buffer = []
    this.db.transaction(() => {
      for (const e of rows) this.insert.run(e.device, e.payload.quantity, e.ts, e.payload.value, e.payload.unit)
    })()
  }

  /** Drops rows past retention, at most once an hour, a chunk at a time. */
  prune(now: number): void {
    if (this.retentionDays <= 0 || now - this.lastPrune < 3_600_000) return
    this.lastPrune = now
    this.db.prepare('DELETE FROM raw WHERE rowid IN (SELECT rowid FROM raw WHERE ts < ? LIMIT 50000)').run(now - this.retentionDays * DAY)
  }

  readings(device: string, from: number, to: number, quantity: string | undefined, limit: number): RawPoint[] {
    this.flush()
    const q = quantity === undefined ? '' : ' AND quantity = ?'
    const args: (string | number)[] = [device, from, to, ...(quantity === undefined ? [] : [quantity]), limit]
    return this.db.prepare(`SELECT ts, quantity, value, unit FROM raw WHERE device = ? AND ts >= ? AND ts <= ?${q} ORDER BY ts LIMIT ?`).all(...args) as RawPoint[]
  }

  close(): void {
    this.flush()
    this.db.close()
  }
}
