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
 * range, count, kinds), which is forwarded like any event so the center can see what is missing;
 * or widens that device's last gap record of the same class and reason, if it has not been sent.
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
/** Newer than any commit time: the quota's cutoff (it evicts regardless of age). */
const ANY_AGE = Number.MAX_SAFE_INTEGER
/** Pages handed back to the file system per housekeeping pass at most (bounds its time). */
const RELEASE_PAGES_PER_PASS = 2048

/** One device's share of a chunk of evicted rows: what its gap record says. */
interface DeviceShare {
  device: string
  from: number
  to: number
  count: number
  kinds: string
  last: number
}

export class Evictor {
  private readonly summarize
  /**
   * The gap record this evictor last wrote per device, class and reason. While it has not left
   * the gateway, a later eviction of the same kind widens it in place instead of adding another:
   * one record per device and eviction would otherwise take nearly the room the eviction freed
   * (a reading is smaller than a gap record), and a full quota with many devices turned into a
   * file of gap records growing at the ingest rate.
   */
  private readonly openGaps = new Map<string, GapEnvelope>()

  constructor(
    private readonly outbox: Outbox,
    private readonly policy: EvictionPolicy,
    private readonly office: string,
    private readonly log: Logger,
    private readonly onEvicted: (e: Evicted) => void = () => {},
  ) {
    // The oldest `limit` rows of a class committed before a cutoff, leased rows skipped, summed
    // up per device in SQL: at a full quota this runs for every chunk, and reading the rows one
    // by one into JavaScript cost as much as ingesting them.
    this.summarize = outbox.db.prepare(`
      SELECT device, min(ts) AS "from", max(ts) AS "to", count(*) AS count, group_concat(DISTINCT kind) AS kinds, max(seq) AS last
      FROM (
        SELECT seq, device, kind, ts FROM outbox
        WHERE priority = ? AND created_at < ? AND kind != 'gap' AND seq NOT IN (SELECT value FROM json_each(?))
        ORDER BY seq LIMIT ?
      )
      GROUP BY device ORDER BY min(seq)`)
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
        const evicted = this.evictOldest(cls, 'quota', ANY_AGE, want)
        if (evicted === 0) break
        total += evicted
      }
      if (this.outbox.usedBytes() <= target) break
    }
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
        const evicted = this.evictOldest(cls, 'ttl', now - ttl, CHUNK)
        if (evicted === 0) break
        total += evicted
      }
    }
    return total
  }

  /**
   * Hands free pages back to the file system (auto_vacuum=INCREMENTAL), a bounded number per
   * call, and only what the outbox will not soon fill again. At a full quota, eviction frees
   * about a tenth of the quota and ingest fills it within seconds: giving those pages back and
   * growing the file again at once cost the main thread a few percent of a core for nothing.
   */
  releasePages(): number {
    const { quotaBytes, lowWater } = this.policy
    const spare = quotaBytes > 0 ? quotaBytes * (1 - lowWater) : 32 * 1024 * 1024
    const { free, pageSize } = this.outbox.pageStats()
    if (free <= 2 * spare) return 0
    const pages = Math.min(RELEASE_PAGES_PER_PASS, Math.floor((free - spare) / pageSize))
    this.outbox.db.pragma(`incremental_vacuum(${pages})`)
    return pages
  }

  /**
   * Evicts up to `limit` of a class's oldest rows committed before `before`, leased rows skipped,
   * with one gap record per device in the same transaction. Returns rows evicted.
   */
  private evictOldest(cls: EvictableClass, reason: EvictionReason, before: number, limit: number): number {
    const priority = Priority[cls]
    const leased = this.outbox.leasedJson()
    const shares = this.summarize.all(priority, before, leased, limit) as DeviceShare[]
    if (shares.length === 0) return 0
    let last = 0
    let counted = 0
    for (const s of shares) {
      last = Math.max(last, s.last)
      counted += s.count
    }
    const now = Date.now()
    // Deletions and their gap records are one transaction: the center never sees data vanish
    // without the record that says so. The delete repeats the summary's conditions up to its
    // last row, so it removes exactly the rows counted (the same transaction sees no new rows).
    let deleted = 0
    let written = 0
    let widened = 0
    const opened: [string, GapEnvelope][] = []
    this.outbox.db.transaction(() => {
      deleted = this.outbox.deleteClassInTransaction(priority, last, before, leased)
      if (deleted !== counted) throw new Error(`eviction would delete ${deleted} rows but counted ${counted}`)
      for (const s of shares) {
        const key = `${s.device}\u0000${cls}\u0000${reason}`
        const open = this.openGaps.get(key)
        if (open) {
          const p = open.payload
          const wider: GapEnvelope = {
            ...open,
            payload: { ...p, from: Math.min(p.from, s.from), to: Math.max(p.to, s.to), count: p.count + s.count, kinds: [...new Set([...p.kinds, ...s.kinds.split(',')])] },
          }
          if (this.outbox.rewriteUnsentInTransaction(wider)) {
            opened.push([key, wider])
            widened++
            continue
          }
        }
        const gap: GapEnvelope = this.outbox.stamp({
          gateway: this.outbox.gatewayId,
          office: this.office,
          device: s.device,
          ts: now,
          kind: 'gap',
          payload: { class: cls, reason, from: s.from, to: s.to, count: s.count, kinds: s.kinds.split(',') },
        })
        this.outbox.insertInTransaction(gap, Priority.event, now)
        opened.push([key, gap])
        written++
      }
    })()
    // Only after the commit: a rolled-back record must not be widened later.
    for (const [key, gap] of opened) {
      if (!this.openGaps.has(key) || this.openGaps.get(key)!.seq !== gap.seq) this.outbox.watch(gap.seq)
      this.openGaps.set(key, gap)
    }
    this.log.warn(
      { code: 'GW_OUTBOX_EVICTED', class: cls, reason, rows: deleted, devices: shares.length, gapsWritten: written, gapsWidened: widened, from: shares[0].from },
      `evicted ${deleted} ${cls} rows (${reason}); gap records written or widened`,
    )
    this.onEvicted({ class: cls, reason, rows: deleted, gaps: written })
    return deleted
  }
}

export const evictableClasses = ORDER
