/**
 * Keeping the outbox within its disk quota and its per-class TTLs, when the center has been
 * unreachable for long enough that something has to give.
 *
 * Policy (least valuable first; oldest first within a class):
 *   1. raw telemetry, 2. telemetry aggregates, 3. events (scans, camera events, reports, status).
 * Alerts and SOS are never evicted, and neither are gap records. Events go only once no telemetry
 * is left. Rows leased to a request in flight are skipped (they may be arriving at the center).
 *
 * Every eviction writes, in the same transaction, one gap record per device (class, reason, time
 * range, count, kinds), which is forwarded like any event so the center can see what is missing.
 */
import type { GapEnvelope } from '../../contracts/envelope.ts'
import type { Logger } from '../../common/logger.ts'
import { Priority, type Outbox } from './outbox.ts'

export interface EvictionPolicy {
  /** Bytes of live pages the outbox may hold; 0 disables the quota. */
  quotaBytes: number
  /** Evict down to this fraction of the quota, so one eviction buys room for a while. */
  lowWater: number
  /** Maximum age (since commit) per class, in ms; 0 keeps forever. Alerts are never expired. */
  ttlMs: { event: number; aggregate: number; telemetry: number }
}

export type EvictionReason = 'quota' | 'ttl'
type EvictableClass = 'telemetry' | 'aggregate' | 'event'

export interface Evicted {
  class: EvictableClass
  reason: EvictionReason
  rows: number
  gaps: number
}

const ORDER: EvictableClass[] = ['telemetry', 'aggregate', 'event']
const CHUNK = 2000

interface Candidate {
  seq: number
  device: string
  kind: string
  ts: number
}

export class Evictor {
  private readonly select
  private readonly selectExpired

  constructor(
    private readonly outbox: Outbox,
    private readonly policy: EvictionPolicy,
    private readonly office: string,
    private readonly log: Logger,
    private readonly onEvicted: (e: Evicted) => void = () => {},
  ) {
    const db = outbox.db
    this.select = db.prepare("SELECT seq, device, kind, ts FROM outbox WHERE priority = ? AND kind != 'gap' ORDER BY seq LIMIT ?")
    this.selectExpired = db.prepare(
      "SELECT seq, device, kind, ts FROM outbox WHERE priority = ? AND kind != 'gap' AND created_at < ? ORDER BY seq LIMIT ?",
    )
  }

  /** Evicts until the outbox is under the quota's low-water mark. Returns rows evicted. */
  enforceQuota(): number {
    const { quotaBytes, lowWater } = this.policy
    if (quotaBytes <= 0 || this.outbox.usedBytes() <= quotaBytes) return 0
    const target = quotaBytes * lowWater
    let total = 0
    for (const cls of ORDER) {
      for (let used = this.outbox.usedBytes(); used > target; used = this.outbox.usedBytes()) {
        // Size the chunk to the excess (rows are roughly alike), so a small overshoot does not
        // cost a whole class.
        const perRow = used / Math.max(1, this.outbox.pendingCount())
        const want = Math.min(CHUNK, Math.max(20, Math.ceil(((used - target) / perRow) * 1.2)))
        const rows = this.candidates(this.select.all(Priority[cls], want + this.outbox.leasedCount()) as Candidate[], want)
        if (rows.length === 0) break
        total += this.evict(cls, 'quota', rows)
      }
      if (this.outbox.usedBytes() <= target) break
    }
    if (total > 0) this.releasePages()
    if (this.outbox.usedBytes() > quotaBytes) {
      this.log.error(
        { code: 'GW_OUTBOX_QUOTA', usedBytes: this.outbox.usedBytes(), quotaBytes },
        'outbox over quota with only alerts and gap records left; they are kept',
      )
    }
    return total
  }

  /** Evicts rows older than their class's TTL. Returns rows evicted. */
  expire(now = Date.now()): number {
    let total = 0
    for (const cls of ORDER) {
      const ttl = this.policy.ttlMs[cls]
      if (ttl <= 0) continue
      for (;;) {
        // Commit time grows with seq, so the class's oldest row (one index probe) says whether
        // anything is due; without this check the query below would walk the whole class.
        const oldest = this.outbox.oldestCreatedAt(Priority[cls])
        if (oldest === undefined || oldest >= now - ttl) break
        const rows = this.candidates(this.selectExpired.all(Priority[cls], now - ttl, CHUNK + this.outbox.leasedCount()) as Candidate[], CHUNK)
        if (rows.length === 0) break
        total += this.evict(cls, 'ttl', rows)
      }
    }
    if (total > 0) this.releasePages()
    return total
  }

  private candidates(rows: Candidate[], limit: number): Candidate[] {
    return rows.filter((r) => !this.outbox.isLeased(r.seq)).slice(0, limit)
  }

  private evict(cls: EvictableClass, reason: EvictionReason, rows: Candidate[]): number {
    const byDevice = new Map<string, { from: number; to: number; count: number; kinds: Set<string> }>()
    for (const r of rows) {
      const g = byDevice.get(r.device)
      if (g) {
        g.from = Math.min(g.from, r.ts)
        g.to = Math.max(g.to, r.ts)
        g.count++
        g.kinds.add(r.kind)
      } else {
        byDevice.set(r.device, { from: r.ts, to: r.ts, count: 1, kinds: new Set([r.kind]) })
      }
    }
    const now = Date.now()
    const gaps: GapEnvelope[] = [...byDevice].map(([device, g]) =>
      this.outbox.stamp({
        gateway: this.outbox.gatewayId,
        office: this.office,
        device,
        ts: now,
        kind: 'gap',
        payload: { class: cls, reason, from: g.from, to: g.to, count: g.count, kinds: [...g.kinds] },
      }),
    )
    // Deletions and their gap records are one transaction: the center never sees data vanish
    // without the record that says so.
    this.outbox.db.transaction(() => {
      for (const r of rows) this.outbox.deleteInTransaction(r.seq)
      for (const gap of gaps) this.outbox.insertInTransaction(gap, Priority.event, now)
    })()
    this.log.warn(
      { code: 'GW_OUTBOX_EVICTED', class: cls, reason, rows: rows.length, devices: gaps.length, from: rows[0].ts },
      `evicted ${rows.length} ${cls} rows (${reason}); gap records written`,
    )
    this.onEvicted({ class: cls, reason, rows: rows.length, gaps: gaps.length })
    return rows.length
  }

  /** Hands freed pages back to the file system (auto_vacuum=INCREMENTAL). */
  private releasePages(): void {
    this.outbox.db.pragma('incremental_vacuum')
  }
}

export const evictableClasses = ORDER
