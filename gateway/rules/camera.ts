/**
 * AI camera events become alerts when the camera is confident enough, at most one per camera and
 * event type per cooldown. The cooldown is measured in source time, so a replayed or late batch is
 * judged the same way as a live one. Time windows and storm alerts belong to the rules issue.
 */
import type { Envelope, Severity } from '../../contracts/envelope.ts'
import type { GatewayConfig } from '../config/schema.ts'
import { ownState, type Rule, type RuleOutput } from './rule.ts'

const PREFIX = 'camera'

export class CameraRule implements Rule {
  readonly name = 'camera'
  private lastAlertAt = new Map<string, number>()

  constructor(private readonly settings: GatewayConfig['camera']) {}

  restore(state: ReadonlyMap<string, string>): void {
    this.lastAlertAt = ownState<number>(state, PREFIX)
  }

  evaluate(envelope: Envelope, out: RuleOutput): void {
    if (envelope.kind !== 'camera') return
    const { event, confidence, region, channel } = envelope.payload
    if (confidence < this.settings.minConfidence) return out.suppress('camera.confidence')
    const key = `${PREFIX}:${envelope.device}:${event}`
    const last = this.lastAlertAt.get(key)
    if (last !== undefined && envelope.ts - last >= 0 && envelope.ts - last < this.settings.cooldownSeconds * 1000) {
      return out.suppress('camera.cooldown')
    }
    const severity: Severity = this.settings.severity[event] ?? 'minor'
    const where = region ?? (channel !== undefined ? `channel ${channel}` : 'camera view')
    out.raise({
      type: `camera.${event.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`,
      severity,
      message: `${event} detected at ${where} (confidence ${Math.round(confidence * 100)}%)`,
    })
    this.lastAlertAt.set(key, envelope.ts)
    out.put(key, envelope.ts)
  }
}
