/**
 * AI camera events become alerts when the camera is confident enough, when the event counts at
 * that time of day (intrusion only outside opening hours, say), and at most once per camera and
 * event type per cooldown. Cooldown and windows use the event's own time, so a late or replayed
 * batch is judged the same way as a live one. A camera storm beyond the cooldowns is the storm
 * guard's (storm.ts).
 */
import type { Envelope, Severity } from '../../contracts/envelope.ts'
import type { GatewayConfig } from '../config/schema.ts'
import { inWindow, type Office } from './office.ts'
import { ownState, type Rule, type RuleOutput } from './rule.ts'

const PREFIX = 'camera'

export class CameraRule implements Rule {
  readonly name = 'camera'
  private lastAlertAt = new Map<string, number>()
  private readonly settings: GatewayConfig['camera']

  constructor(private readonly office: Office) {
    this.settings = office.config.camera
  }

  restore(state: ReadonlyMap<string, string>): void {
    this.lastAlertAt = ownState<number>(state, PREFIX)
  }

  evaluate(envelope: Envelope, out: RuleOutput): void {
    if (envelope.kind !== 'camera') return
    const { event, confidence, region, channel } = envelope.payload
    if (confidence < this.settings.minConfidence) return out.suppress('camera.confidence')
    const window = this.settings.windows[event]
    if (window) {
      const minute = this.office.localMinuteOfDay(envelope.ts)
      if ((window.outside && inWindow(minute, window.outside)) || (window.during && !inWindow(minute, window.during))) {
        return out.suppress('camera.window')
      }
    }
    const key = `${PREFIX}:${envelope.device}:${event}`
    const last = this.lastAlertAt.get(key)
    if (last !== undefined && envelope.ts - last >= 0 && envelope.ts - last < this.settings.cooldownSeconds * 1000) {
      return out.suppress('camera.cooldown')
    }
    const severity: Severity = this.settings.severity[event] ?? 'minor'
    const where = region ?? (channel !== undefined ? `channel ${channel}` : 'camera view')
    const alertId = out.raise({
      type: `camera.${event.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`,
      severity,
      message: `${event} detected at ${where} (confidence ${Math.round(confidence * 100)}%)`,
    })
    if (alertId === undefined) return
    this.lastAlertAt.set(key, envelope.ts)
    out.put(key, envelope.ts)
  }
}
