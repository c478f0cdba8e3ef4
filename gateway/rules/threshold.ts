/**
 * Sensor threshold alarms: warning (optional), low alarm (低报) and high alarm (高报) per quantity,
 * from the office config with per-enterprise and per-device overrides.
 *
 * One excursion is one alert:
 * - raised when a reading reaches a level and stays there for the debounce (N consecutive samples,
 *   or T seconds, whichever first);
 * - updated when it climbs to a higher level (at once: escalation is never debounced), with the
 *   peak so far; the severity never steps back down within an excursion;
 * - cleared once, when a reading falls below the clear level (`clear`, or the lowest level minus
 *   the hysteresis).
 * Readings between the clear level and the lowest level change nothing, so a value hovering around
 * a level does not flap.
 */
import type { Envelope, ReadingEnvelope, Severity } from '../../contracts/envelope.ts'
import { severityRank } from '../../contracts/envelope.ts'
import type { ThresholdConfig } from '../config/schema.ts'
import type { Office } from './office.ts'
import { ownState, type Rule, type RuleOutput } from './rule.ts'

interface Level {
  name: 'warning' | 'low' | 'high'
  threshold: number
  severity: Severity
}

/** Persisted per device and quantity: an open alarm, or a level being debounced. */
interface AlarmState {
  alertId?: string
  severity?: Severity
  threshold?: number
  peak?: number
  /** Debounce: since when (source time) and how many samples in a row at or above a level. */
  pendingSince?: number
  pendingSamples?: number
  /**
   * The enterprise the device belonged to when the alarm was raised ('' for none). Absent in
   * state written before 2026-11-27, which is then not checked.
   */
  enterprise?: string
  /** The grid then ('' for none), for the same reason. */
  grid?: string
}

const PREFIX = 'alarm'

export class ThresholdRule implements Rule {
  readonly name = 'sensor.threshold'
  /** device → quantity → state; nested so a reading costs no key string until something changes. */
  private states = new Map<string, Map<string, AlarmState>>()

  constructor(private readonly office: Office) {}

  restore(state: ReadonlyMap<string, string>): void {
    this.states = new Map()
    for (const [key, s] of ownState<AlarmState>(state, PREFIX)) {
      const [, device, quantity] = key.split(':') as [string, string, string]
      this.byDevice(device).set(quantity, s)
    }
  }

  /** The alarm currently open for a device's quantity, if any (for tests and status pages). */
  activeAlarm(device: string, quantity: string): Readonly<AlarmState> | undefined {
    const s = this.states.get(device)?.get(quantity)
    return s?.alertId ? s : undefined
  }

  private byDevice(device: string): Map<string, AlarmState> {
    let m = this.states.get(device)
    if (!m) this.states.set(device, (m = new Map<string, AlarmState>()))
    return m
  }

  evaluate(envelope: Envelope, out: RuleOutput): void {
    if (envelope.kind !== 'reading') return
    const { quantity, value, unit } = envelope.payload
    const t = this.office.threshold(envelope.device, quantity)
    // A reading in another unit than the threshold's cannot be compared; it is still stored.
    if (!t || unit !== t.unit) return
    const level = levelOf(value, t)
    const s = this.states.get(envelope.device)?.get(quantity)
    // The common case, a normal reading with nothing open or pending, writes nothing.
    if (!level && !s) return
    const key = { device: envelope.device, quantity }

    if (!s?.alertId) {
      if (!level) {
        this.forget(out, key)
        return
      }
      const pendingSince = s?.pendingSince ?? envelope.ts
      const pendingSamples = (s?.pendingSamples ?? 0) + 1
      const held = pendingSamples >= t.debounceSamples || (t.debounceSeconds > 0 && envelope.ts - pendingSince >= t.debounceSeconds * 1000)
      if (!held) {
        this.set(out, key, { pendingSince, pendingSamples })
        return
      }
      const alertId = out.raise({ ...fields(envelope, level), peak: value })
      // Held back by the storm guard: stay pending, the next reading tries again.
      if (alertId === undefined) return this.set(out, key, { pendingSince, pendingSamples })
      this.set(out, key, { alertId, severity: level.severity, threshold: level.threshold, peak: value, enterprise: envelope.enterprise ?? '', grid: envelope.grid ?? '' })
      return
    }

    // The device moved to another enterprise (a reloaded office config) while its alarm was open:
    // the alarm is its former owner's. It is cleared under that owner, so the new owner's values
    // never reach the former owner's case and inspectors, and the reading is judged afresh, for
    // the new owner.
    if (s.enterprise !== undefined && s.enterprise !== (envelope.enterprise ?? '')) {
      out.follow(
        s.alertId,
        'cleared',
        {
          type: this.name,
          severity: s.severity!,
          message: `${quantity} alarm closed: the sensor now belongs to another enterprise`,
          quantity,
          threshold: s.threshold!,
          ...(s.peak !== undefined ? { peak: s.peak } : {}),
        },
        // The owner and grid it was raised under, '' meaning none: nothing of the new config's.
        { device: envelope.device, ts: envelope.ts, enterprise: s.enterprise || null, grid: s.grid === undefined ? undefined : s.grid || null },
      )
      this.forget(out, key)
      return this.evaluate(envelope, out)
    }
    const peak = Math.max(s.peak ?? value, value)
    if (value < clearLevel(t)) {
      out.follow(s.alertId, 'cleared', {
        type: this.name,
        severity: s.severity!,
        message: `${quantity} back to ${value} ${unit}, below clear level ${clearLevel(t)} ${unit}`,
        quantity,
        value,
        unit,
        threshold: s.threshold!,
        peak,
      })
      this.forget(out, key)
      return
    }
    if (level && severityRank[level.severity] > severityRank[s.severity!]) {
      out.follow(s.alertId, 'updated', { ...fields(envelope, level), peak })
      this.set(out, key, { ...s, severity: level.severity, threshold: level.threshold, peak })
      return
    }
    if (peak !== s.peak) this.set(out, key, { ...s, peak })
  }

  private set(out: RuleOutput, key: { device: string; quantity: string }, s: AlarmState): void {
    this.byDevice(key.device).set(key.quantity, s)
    out.put(`${PREFIX}:${key.device}:${key.quantity}`, s)
  }

  private forget(out: RuleOutput, key: { device: string; quantity: string }): void {
    this.states.get(key.device)?.delete(key.quantity)
    out.put(`${PREFIX}:${key.device}:${key.quantity}`, null)
  }
}

function fields(e: ReadingEnvelope, level: Level) {
  const { quantity, value, unit } = e.payload
  return {
    type: 'sensor.threshold',
    severity: level.severity,
    message: `${quantity} ${value} ${unit} at or above ${level.name === 'warning' ? 'the warning level' : `${level.name} alarm`} ${level.threshold} ${unit}`,
    quantity,
    value,
    unit,
    threshold: level.threshold,
  }
}

function levelOf(value: number, t: ThresholdConfig): Level | undefined {
  if (value >= t.high) return { name: 'high', threshold: t.high, severity: 'critical' }
  if (value >= t.low) return { name: 'low', threshold: t.low, severity: 'major' }
  if (t.warning !== undefined && value >= t.warning) return { name: 'warning', threshold: t.warning, severity: 'minor' }
  return undefined
}

export function clearLevel(t: ThresholdConfig): number {
  return t.clear ?? (t.warning ?? t.low) - t.hysteresis
}
