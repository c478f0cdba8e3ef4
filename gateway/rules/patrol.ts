/**
 * Patrol rules that need no schedule: an SOS from patrol staff is a critical alert at once, and a
 * scan of a tag that belongs to no checkpoint is flagged. Tours (not started, missed checkpoint,
 * late, out of order) belong to the rules issue.
 */
import type { Envelope } from '../../contracts/envelope.ts'
import type { Rule, RuleOutput } from './rule.ts'

export class PatrolRule implements Rule {
  readonly name = 'patrol'

  restore(): void {}

  evaluate(envelope: Envelope, out: RuleOutput): void {
    if (envelope.kind === 'report' && envelope.payload.type === 'sos') {
      const who = envelope.payload.staff ?? envelope.device
      const where = envelope.payload.location
        ? ` at ${envelope.payload.location.lat.toFixed(5)},${envelope.payload.location.lon.toFixed(5)}`
        : ''
      out.raise({
        type: 'patrol.sos',
        severity: 'critical',
        message: `SOS from ${who}${where}${envelope.payload.text ? `: ${envelope.payload.text}` : ''}`,
      })
    } else if (envelope.kind === 'scan' && envelope.payload.checkpoint === undefined) {
      out.raise({
        type: 'patrol.unknown_tag',
        severity: 'minor',
        message: `tag ${envelope.payload.tag} scanned${envelope.payload.staff ? ` by ${envelope.payload.staff}` : ''} belongs to no checkpoint`,
      })
    }
  }
}
