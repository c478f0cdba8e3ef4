/**
 * Is the sensor itself healthy? Four checks besides the thresholds, each an excursion alert
 * (raised once, cleared once):
 * - `sensor.rate_of_change`: the value moved faster than `ratePerMinute`, measured against a
 *   reference reading at least a minute old (consecutive readings seconds apart would turn sensor
 *   noise into a "rate"); clears when the rate falls under half the limit.
 * - `sensor.stuck`: the same value for `stuckMinutes`; clears when the value changes.
 * - `sensor.stale`: no reading for `staleMinutes` (checked by the clock); clears on a reading.
 * - `sensor.fault`: the device reports status `fault`; clears when it reports `online`.
 *
 * Open alerts are persisted. The running figures (last value, since when unchanged, last seen)
 * change with every reading and are kept in memory only; after a restart the stuck and stale
 * clocks start again from the restart (docs/rules.md, "is not").
 */
import type { Envelope } from '../../contracts/envelope.ts'
import { quantityOfType, type Office } from './office.ts'
import { ownState, type Rule, type RuleOutput } from './rule.ts'

const MINUTE = 60_000

interface Running {
  lastTs: number
  lastValue: number
  /** Reference for the rate of change: a reading at least a minute older than the one compared. */
  refTs: number
  refValue: number
  /** Source time since when the value has not changed. */
  sameSince: number
  /** Gateway clock of the last reading (stale is about data arriving). */
  seenAt: number
}

interface Open {
  alertId: string
  quantity: string
}

const PREFIX = 'health'

export class SensorHealthRule implements Rule {
  readonly name = 'sensor.health'
  private readonly running = new Map<string, Running>()
  private open = new Map<string, Open>()
  private startedAt: number | undefined

  constructor(private readonly office: Office) {}

  restore(state: ReadonlyMap<string, string>): void {
    this.open = ownState<Open>(state, PREFIX)
  }

  evaluate(e: Envelope, out: RuleOutput): void {
    if (e.kind === 'status') return this.status(e.device, e.payload.state, e.payload.reason, e.ts, out)
    if (e.kind !== 'reading') return
    const { quantity, value, unit } = e.payload
    const t = this.office.threshold(e.device, quantity)
    if (!t) return
    const key = `${e.device}:${quantity}`
    const r = this.running.get(key)
    // Most readings find nothing open: skip building the alert keys then.
    if (this.open.size > 0) this.clear(out, 'sensor.stale', key, `${quantity} readings from ${e.device} arrive again`, e.device, e.ts)
    if (!r) {
      this.running.set(key, { lastTs: e.ts, lastValue: value, refTs: e.ts, refValue: value, sameSince: e.ts, seenAt: out.now })
      return
    }

    if (t.ratePerMinute > 0 && e.ts - r.refTs >= MINUTE) {
      const rate = (Math.abs(value - r.refValue) / (e.ts - r.refTs)) * MINUTE
      const msg = `${quantity} changing at ${rate.toFixed(1)} ${unit}/min (limit ${t.ratePerMinute})`
      if (rate >= t.ratePerMinute) this.raise(out, 'sensor.rate_of_change', 'major', key, quantity, msg, e.device, e.ts, value, unit)
      else if (rate < t.ratePerMinute / 2) this.clear(out, 'sensor.rate_of_change', key, msg, e.device, e.ts)
      r.refTs = e.ts
      r.refValue = value
    }

    if (value !== r.lastValue) {
      r.sameSince = e.ts
      if (this.open.size > 0) this.clear(out, 'sensor.stuck', key, `${quantity} moving again (${value} ${unit})`, e.device, e.ts)
    } else if (t.stuckMinutes > 0 && e.ts - r.sameSince >= t.stuckMinutes * MINUTE) {
      const minutes = Math.round((e.ts - r.sameSince) / MINUTE)
      this.raise(out, 'sensor.stuck', 'minor', key, quantity, `${quantity} stuck at ${value} ${unit} for ${minutes} min`, e.device, e.ts, value, unit)
    }
    r.lastTs = e.ts
    r.lastValue = value
    r.seenAt = out.now
  }

  tick(out: RuleOutput): void {
    this.startedAt ??= out.now
    // Sensors that have reported; and configured sensors that never have, from the first tick.
    for (const [id, device] of this.office.devices) {
      const quantity = quantityOfType[device.type]
      if (quantity && !this.running.has(`${id}:${quantity}`)) {
        this.running.set(`${id}:${quantity}`, { lastTs: 0, lastValue: NaN, refTs: 0, refValue: NaN, sameSince: 0, seenAt: this.startedAt })
      }
    }
    for (const [key, r] of this.running) {
      const [device, quantity] = key.split(':') as [string, string]
      const t = this.office.threshold(device, quantity)
      if (!t || t.staleMinutes <= 0 || out.now - r.seenAt < t.staleMinutes * MINUTE) continue
      const minutes = Math.round((out.now - r.seenAt) / MINUTE)
      this.raise(out, 'sensor.stale', 'major', key, quantity, `no ${quantity} reading from ${device} for ${minutes} min`, device, out.now)
    }
  }

  private status(device: string, state: string, reason: string | undefined, ts: number, out: RuleOutput): void {
    const key = `${device}:status`
    if (state === 'fault') this.raise(out, 'sensor.fault', 'major', key, undefined, `${device} reports a fault${reason ? `: ${reason}` : ''}`, device, ts)
    else if (state === 'online') this.clear(out, 'sensor.fault', key, `${device} is back online`, device, ts)
  }

  private raise(out: RuleOutput, type: string, severity: 'major' | 'minor', key: string, quantity: string | undefined, message: string, device: string, ts: number, value?: number, unit?: string): void {
    const k = `${PREFIX}:${type}:${key}`
    if (this.open.has(k)) return
    const fields = { type, severity, message, ...(quantity ? { quantity } : {}), ...(value !== undefined && !Number.isNaN(value) ? { value } : {}), ...(unit ? { unit } : {}) }
    const alertId = out.raise(fields, out.source ? undefined : { device, ts })
    if (alertId === undefined) return
    const open = { alertId, quantity: quantity ?? '' }
    this.open.set(k, open)
    out.put(k, open)
  }

  private clear(out: RuleOutput, type: string, key: string, message: string, device: string, ts: number): void {
    const k = `${PREFIX}:${type}:${key}`
    const open = this.open.get(k)
    if (!open) return
    out.follow(open.alertId, 'cleared', { type, severity: type === 'sensor.stuck' ? 'minor' : 'major', message, ...(open.quantity ? { quantity: open.quantity } : {}) }, out.source ? undefined : { device, ts })
    this.open.delete(k)
    out.put(k, null)
  }
}
