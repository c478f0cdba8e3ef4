/**
 * Sensor threshold alarms: low alarm (低报) and high alarm (高报) per quantity, with hysteresis.
 *
 * One excursion is one alert: raised when a reading reaches the low or high level, updated when it
 * climbs from low to high (the severity never steps back down within an excursion), cleared once
 * when it falls below `low - hysteresis`. Readings inside the band change nothing, so a value
 * hovering around the level does not flap.
 *
 * Debounce, rate of change, stuck and stale detection, and per-enterprise overrides belong to the
 * rules issue and build on this state.
 */
import type { Envelope, ReadingEnvelope, Severity } from '../../contracts/envelope.ts'
import { severityRank } from '../../contracts/envelope.ts'
import type { ThresholdConfig } from '../config/schema.ts'
import { ownState, type Rule, type RuleOutput } from './rule.ts'

interface ActiveAlarm {
  alertId: string
  severity: Severity
  threshold: number
  peak: number
}

const PREFIX = 'alarm'

export class ThresholdRule implements Rule {
  readonly name = 'sensor.threshold'
  private active = new Map<string, ActiveAlarm>()

  constructor(private readonly thresholds: Readonly<Record<string, ThresholdConfig>>) {}

  restore(state: ReadonlyMap<string, string>): void {
    this.active = ownState<ActiveAlarm>(state, PREFIX)
  }

  /** The alarm currently open for a device's quantity, if any (for tests and status pages). */
  activeAlarm(device: string, quantity: string): Readonly<ActiveAlarm> | undefined {
    return this.active.get(`${PREFIX}:${device}:${quantity}`)
  }

  evaluate(envelope: Envelope, out: RuleOutput): void {
    if (envelope.kind !== 'reading') return
    const { quantity, value, unit } = envelope.payload
    const t = this.thresholds[quantity]
    // A reading in another unit than the threshold's cannot be compared; it is still stored.
    if (!t || unit !== t.unit) return
    const key = `${PREFIX}:${envelope.device}:${quantity}`
    const alarm = this.active.get(key)
    const level = levelOf(value, t)

    if (!alarm) {
      if (!level) return
      const alertId = out.raise({ ...this.fields(envelope, level), peak: value })
      this.set(out, key, { alertId, severity: level.severity, threshold: level.threshold, peak: value })
      return
    }

    const peak = Math.max(alarm.peak, value)
    if (value < t.low - t.hysteresis) {
      out.follow(alarm.alertId, 'cleared', {
        type: this.name,
        severity: alarm.severity,
        message: `${quantity} back to ${value} ${unit}, below clear level ${t.low - t.hysteresis} ${unit}`,
        quantity,
        value,
        unit,
        threshold: alarm.threshold,
        peak,
      })
      this.active.delete(key)
      out.put(key, null)
      return
    }
    if (level && severityRank[level.severity] > severityRank[alarm.severity]) {
      out.follow(alarm.alertId, 'updated', { ...this.fields(envelope, level), peak })
      this.set(out, key, { ...alarm, severity: level.severity, threshold: level.threshold, peak })
      return
    }
    if (peak !== alarm.peak) this.set(out, key, { ...alarm, peak })
  }

  private fields(e: ReadingEnvelope, level: Level) {
    const { quantity, value, unit } = e.payload
    return {
      type: this.name,
      severity: level.severity,
      message: `${quantity} ${value} ${unit} at or above ${level.name} alarm ${level.threshold} ${unit}`,
      quantity,
      value,
      unit,
      threshold: level.threshold,
    }
  }

  private set(out: RuleOutput, key: string, alarm: ActiveAlarm): void {
    this.active.set(key, alarm)
    out.put(key, alarm)
  }
}

interface Level {
  name: 'low' | 'high'
  threshold: number
  severity: Severity
}

function levelOf(value: number, t: ThresholdConfig): Level | undefined {
  if (value >= t.high) return { name: 'high', threshold: t.high, severity: 'critical' }
  if (value >= t.low) return { name: 'low', threshold: t.low, severity: 'major' }
  return undefined
}
