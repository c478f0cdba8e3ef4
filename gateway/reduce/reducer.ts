/**
 * Telemetry reduction: what of the raw readings goes to the center.
 *
 * - Report by exception: a reading is forwarded when it moved at least the quantity's deadband
 *   from the last one forwarded, when `maxIntervalSeconds` passed since then, when the rules
 *   made an alert of it, or when its sensor now belongs to another enterprise. Everything else
 *   is summarised...
 * - ...in one-minute aggregates (min, max, mean, count) per device and quantity (and per owner,
 *   grid and unit, see add), forwarded once the minute is over (plus a few seconds for
 *   stragglers).
 * The rules see every reading either way, and the raw store keeps every reading locally.
 *
 * Kept in memory: after a crash the current minute's aggregate is lost and the next reading of
 * each sensor is forwarded (docs/rules.md, "is not"). A config reload is not a crash: the new
 * reducer takes over the old one's open minutes (see takeOver).
 */
import type { AggregateEnvelope, EnvelopeDraft, ReadingEnvelope } from '../../contracts/envelope.ts'
import type { GatewayConfig } from '../config/schema.ts'

const MINUTE = 60_000
/** How long after a minute ends its aggregate waits for late readings. */
const SETTLE_MS = 5000

interface Sent {
  value: number
  ts: number
  enterprise: string | undefined
}

interface Bucket {
  frame: Pick<ReadingEnvelope, 'gateway' | 'office' | 'device' | 'enterprise' | 'grid'>
  quantity: string
  unit: string
  from: number
  min: number
  max: number
  sum: number
  count: number
}

export class Reducer {
  private readonly sent = new Map<string, Sent>()
  private readonly buckets = new Map<string, Bucket>()

  constructor(
    private readonly settings: GatewayConfig['reduction'],
    private readonly stamp: (draft: EnvelopeDraft) => { id: string },
  ) {}

  /**
   * Continues where `previous` (the reducer of the config before a reload) left off. Its open
   * minutes hold readings that were acknowledged and not forwarded one by one; dropping them lost
   * up to a minute of every sensor's data at the center. They close under the new settings, with
   * the owner each reading had. The last forwarded values carry over too, so a reload does not
   * forward every sensor's next reading; a changed deadband applies from the next comparison.
   */
  takeOver(previous: Reducer): void {
    for (const [key, b] of previous.buckets) this.buckets.set(key, b)
    for (const [key, sent] of previous.sent) this.sent.set(key, sent)
    previous.buckets.clear()
    previous.sent.clear()
  }

  /** Whether this reading goes to the center itself (it always counts in its aggregate). */
  forward(e: ReadingEnvelope, alerted: boolean): boolean {
    const key = `${e.device}\u0000${e.payload.quantity}`
    const deadband = this.settings.deadband[e.payload.quantity] ?? 0
    const last = this.sent.get(key)
    const go =
      alerted ||
      deadband === 0 ||
      last === undefined ||
      Math.abs(e.payload.value - last.value) >= deadband ||
      e.ts - last.ts >= this.settings.maxIntervalSeconds * 1000 ||
      e.ts < last.ts ||
      // Moved to another enterprise (a reload): its readings are what tell the center so.
      e.enterprise !== last.enterprise
    if (go) this.sent.set(key, { value: e.payload.value, ts: e.ts, enterprise: e.enterprise })
    return go
  }

  add(e: ReadingEnvelope): void {
    if (!this.settings.aggregates) return
    const from = Math.floor(e.ts / MINUTE) * MINUTE
    // One aggregate per owner, grid and unit: a sensor moved to another enterprise or grid within
    // the minute (a reload) must not show the new owner's values under the former one, and values
    // in two units do not average. Two aggregates of one minute are two points at the center
    // (its timestamps carry the envelope's sequence), so neither overwrites the other.
    const key = `${e.device}\u0000${e.payload.quantity}\u0000${from}\u0000${e.payload.unit}\u0000${e.enterprise ?? ''}\u0000${e.grid ?? ''}`
    const v = e.payload.value
    const b = this.buckets.get(key)
    if (b) {
      b.min = Math.min(b.min, v)
      b.max = Math.max(b.max, v)
      b.sum += v
      b.count++
      return
    }
    const { gateway, office, device, enterprise, grid } = e
    this.buckets.set(key, {
      frame: { gateway, office, device, ...(enterprise !== undefined ? { enterprise } : {}), ...(grid !== undefined ? { grid } : {}) },
      quantity: e.payload.quantity,
      unit: e.payload.unit,
      from,
      min: v,
      max: v,
      sum: v,
      count: 1,
    })
  }

  /** Aggregates of every minute over (and settled) by `now`, stamped, oldest first. */
  flush(now: number): AggregateEnvelope[] {
    const out: AggregateEnvelope[] = []
    for (const [key, b] of this.buckets) {
      if (b.from + MINUTE + SETTLE_MS > now) continue
      this.buckets.delete(key)
      out.push(
        this.stamp({
          ...b.frame,
          ts: b.from,
          kind: 'aggregate',
          payload: { quantity: b.quantity, unit: b.unit, from: b.from, to: b.from + MINUTE, min: b.min, max: b.max, mean: round(b.sum / b.count), count: b.count },
        }) as AggregateEnvelope,
      )
    }
    return out.sort((a, b) => a.ts - b.ts)
  }
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6
}
