/**
 * Every raw reading, kept on the gateway for `rawRetentionDays` and queryable at GET /v1/raw, so
 * an engineer or inspector on site can see what report-by-exception did not send.
 *
 * Stored in chunks: one row holds up to 500 consecutive readings of one device's quantity, or a
 * minute of them, as two JSON arrays. A row per reading cost the gateway a fifth of its
 * throughput (two index updates per reading); a chunk costs one row per sensor-minute. Chunks are
 * written on a 1 s timer, in their own SQLite file with `synchronous=NORMAL`: this is local
 * history, not part of the acknowledgement promise (the outbox is). A crash loses the chunks not
 * yet written, at most the last minute of raw history.
 */
import Database from 'better-sqlite3'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import type { ReadingEnvelope } from '../../contracts/envelope.ts'
import { Checkpointer } from '../../common/checkpointer.ts'
import { limitPageCache } from '../../common/sqlite.ts'

export interface RawPoint {
  ts: number
  quantity: string
  value: number
  unit: string
}

interface Chunk {
  device: string
  quantity: string
  unit: string
  ts: number[]
  values: number[]
}

const CHUNK_READINGS = 500
const CHUNK_SPAN_MS = 60_000
const FLUSH_MS = 1000
const DAY = 86_400_000

export class RawStore {
  private readonly db: Database.Database
  private readonly insert: Database.Statement
  /** Open chunks, device → quantity → chunk. */
  private readonly open = new Map<string, Map<string, Chunk>>()
  private readonly full: Chunk[] = []
  private timer: NodeJS.Timeout | undefined
  private lastPrune = 0
  private readonly checkpointer: Checkpointer

  constructor(
    path: string,
    private readonly retentionDays: number,
  ) {
    mkdirSync(dirname(path), { recursive: true })
    this.db = new Database(path)
    limitPageCache(this.db)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('synchronous = NORMAL')
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS raw_chunks (
        device TEXT NOT NULL, quantity TEXT NOT NULL, unit TEXT NOT NULL,
        first_ts INTEGER NOT NULL, last_ts INTEGER NOT NULL, ts TEXT NOT NULL, vals TEXT NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS raw_by_device ON raw_chunks (device, first_ts);
      CREATE INDEX IF NOT EXISTS raw_by_end ON raw_chunks (last_ts);
    `)
    this.insert = this.db.prepare('INSERT INTO raw_chunks (device, quantity, unit, first_ts, last_ts, ts, vals) VALUES (?, ?, ?, ?, ?, ?, ?)')
    // Checkpoints on the shared checkpoint thread, as for the outbox: SQLite's automatic ones ran
    // inside whichever chunk write crossed 4 MB, on the event loop (measured: ~4 ms every ~40 s
    // at 5,000 readings/s).
    this.checkpointer = new Checkpointer(path, 1000, undefined, { db: this.db })
  }

  add(e: ReadingEnvelope): void {
    if (this.retentionDays <= 0) return
    let byQuantity = this.open.get(e.device)
    if (!byQuantity) this.open.set(e.device, (byQuantity = new Map<string, Chunk>()))
    const { quantity, unit, value } = e.payload
    let c = byQuantity.get(quantity)
    if (c && (c.unit !== unit || c.ts.length >= CHUNK_READINGS || e.ts - c.ts[0] >= CHUNK_SPAN_MS || e.ts < c.ts[0])) {
      this.full.push(c)
      c = undefined
    }
    if (!c) byQuantity.set(quantity, (c = { device: e.device, quantity, unit, ts: [], values: [] }))
    c.ts.push(e.ts)
    c.values.push(value)
    this.timer ??= setTimeout(() => this.flush(), FLUSH_MS)
  }

  /** Writes full chunks, and open ones older than a minute. `all` writes every chunk (shutdown, queries). */
  flush(all = false): void {
    clearTimeout(this.timer)
    this.timer = undefined
    const now = Date.now()
    const due = this.full.splice(0)
    for (const [device, byQuantity] of this.open) {
      for (const [quantity, c] of byQuantity) {
        if (all || now - c.ts[0] >= CHUNK_SPAN_MS) {
          due.push(c)
          byQuantity.delete(quantity)
        }
      }
      if (byQuantity.size === 0) this.open.delete(device)
    }
    if (due.length > 0) {
      this.db.transaction(() => {
        for (const c of due) {
          this.insert.run(c.device, c.quantity, c.unit, Math.min(...c.ts), Math.max(...c.ts), JSON.stringify(c.ts), JSON.stringify(c.values))
        }
      })()
    }
    if (this.open.size > 0) this.timer = setTimeout(() => this.flush(), FLUSH_MS)
  }

  /** Drops chunks past retention, at most once an hour. */
  prune(now: number): void {
    if (this.retentionDays <= 0 || now - this.lastPrune < 3_600_000) return
    this.lastPrune = now
    this.db.prepare('DELETE FROM raw_chunks WHERE last_ts < ?').run(now - this.retentionDays * DAY)
  }

  readings(device: string, from: number, to: number, quantity: string | undefined, limit: number): RawPoint[] {
    this.flush(true)
    const q = quantity === undefined ? '' : ' AND quantity = ?'
    const args: (string | number)[] = [device, to, from, ...(quantity === undefined ? [] : [quantity])]
    const rows = this.db
      .prepare(`SELECT quantity, unit, ts, vals FROM raw_chunks WHERE device = ? AND first_ts <= ? AND last_ts >= ?${q} ORDER BY first_ts`)
      .all(...args) as { quantity: string; unit: string; ts: string; vals: string }[]
    const points: RawPoint[] = []
    for (const r of rows) {
      const ts = JSON.parse(r.ts) as number[]
      const values = JSON.parse(r.vals) as number[]
      ts.forEach((t, i) => {
        if (t >= from && t <= to) points.push({ ts: t, quantity: r.quantity, value: values[i], unit: r.unit })
      })
    }
    return points.sort((a, b) => a.ts - b.ts).slice(0, limit)
  }

  close(): void {
    this.flush(true)
    clearTimeout(this.timer)
    void this.checkpointer.close()
    this.db.close()
  }
}
