/**
 * People in the field, besides their tours:
 * - an SOS is a critical alert at once (the uplink's urgent lane carries it without delay);
 * - a problem report becomes an incident for the center: category, description, location, photo,
 *   reporter, grid, and the level that should handle it;
 * - a tag that belongs to no checkpoint is flagged;
 * - the same tag scanned again by the same device within `doubleScanSeconds` (scan time) is a
 *   double scan: acknowledged, answered with a receipt, and not stored twice.
 */
import type { Envelope } from '../../contracts/envelope.ts'
import type { Office } from './office.ts'
import type { Rule, RuleOutput } from './rule.ts'

export class PatrolRule implements Rule {
  readonly name = 'patrol'
  /** device + tag → scan time of the last accepted scan. In memory: a restart forgets a few seconds. */
  private readonly lastScan = new Map<string, number>()

  constructor(private readonly office: Office) {}

  restore(): void {}

  evaluate(e: Envelope, out: RuleOutput): void {
    if (e.kind === 'report') {
      const p = e.payload
      if (p.type === 'sos') {
        const who = p.staff ?? e.device
        const where = p.location ? ` at ${p.location.lat.toFixed(5)},${p.location.lon.toFixed(5)}` : ''
        out.raise({ type: 'patrol.sos', severity: 'critical', message: `SOS from ${who}${where}${p.text ? `: ${p.text}` : ''}` })
      } else {
        const category = p.category ?? 'other'
        const incident = out.derive({
          gateway: e.gateway,
          office: e.office,
          device: e.device,
          ...(e.grid !== undefined ? { grid: e.grid } : {}),
          ts: e.ts,
          kind: 'incident',
          payload: {
            incidentId: '',
            category,
            description: p.text ?? '',
            ...(p.staff !== undefined ? { reporter: p.staff } : {}),
            ...(p.location ? { location: p.location } : {}),
            ...(p.photo !== undefined ? { photo: p.photo } : {}),
            level: this.office.config.levels.byType[`incident.${category}`] ?? out.levelFor('patrol.incident', 'minor'),
            cause: e.id,
          },
        })
        if (incident.kind === 'incident') incident.payload.incidentId = incident.id
      }
      return
    }
    if (e.kind !== 'scan') return
    const { tag, checkpoint, staff } = e.payload
    const key = `${e.device}\u0000${tag.toUpperCase()}`
    const last = this.lastScan.get(key)
    const window = this.office.config.patrol.doubleScanSeconds * 1000
    if (last !== undefined && Math.abs(e.ts - last) < window) {
      out.drop = 'double_scan'
      out.receipt = { status: 'rejected', reason: 'double scan', ...(checkpoint ? { checkpoint } : {}) }
      out.suppress('patrol.double_scan')
      return
    }
    this.lastScan.set(key, e.ts)
    if (checkpoint === undefined) {
      out.raise({ type: 'patrol.unknown_tag', severity: 'minor', message: `tag ${tag} scanned${staff ? ` by ${staff}` : ''} belongs to no checkpoint` })
      out.receipt = { status: 'rejected', reason: 'unknown tag' }
    }
  }

  tick(out: RuleOutput): void {
    const window = this.office.config.patrol.doubleScanSeconds * 1000
    for (const [key, at] of this.lastScan) if (out.now - at > window + 60_000) this.lastScan.delete(key)
  }
}
