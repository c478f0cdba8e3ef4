/**
 * An alert, as the center sees it, is the fold of its events (raised, updated..., cleared) by
 * alert id. The store keeps the events; this is the one place that turns them into alerts.
 */
import { severityRank, type Severity } from '../../contracts/envelope.ts'
import type { AlertEventRow } from '../store/store.ts'

export interface AlertView {
  alertId: string
  office: string
  gateway: string
  device: string
  enterprise?: string
  type: string
  /** The highest severity the alert reached. */
  severity: Severity
  /** `active` until the gateway clears it. (The staff lifecycle arrives with the cloud API issue.) */
  state: 'active' | 'cleared'
  raisedAt: string
  updatedAt: string
  clearedAt?: string
  message: string
  quantity?: string
  value?: number
  unit?: string
  threshold?: number
  peak?: number
  events: number
}

export interface AlertFilter {
  state?: 'active' | 'cleared'
  severity?: Severity
  device?: string
  type?: string
}

/** Events must be oldest first. Returns alerts newest first. */
export function foldAlerts(events: readonly AlertEventRow[], filter: AlertFilter = {}): AlertView[] {
  const byId = new Map<string, AlertView>()
  for (const e of events) {
    const at = new Date(e.ts).toISOString()
    let a = byId.get(e.alertId)
    if (!a) {
      a = {
        alertId: e.alertId,
        office: e.office,
        gateway: e.gateway,
        device: e.device,
        ...(e.enterprise !== undefined ? { enterprise: e.enterprise } : {}),
        type: e.type,
        severity: e.severity,
        state: 'active',
        raisedAt: at,
        updatedAt: at,
        message: e.message,
        events: 0,
      }
      byId.set(e.alertId, a)
    }
    a.events++
    a.updatedAt = at
    if (severityRank[e.severity] > severityRank[a.severity]) a.severity = e.severity
    if (e.state === 'cleared') {
      a.state = 'cleared'
      a.clearedAt = at
    } else {
      // The clear's message says it is over; the alert keeps saying what went wrong.
      a.message = e.message
    }
    if (e.quantity !== undefined) a.quantity = e.quantity
    if (e.value !== undefined) a.value = e.value
    if (e.unit !== undefined) a.unit = e.unit
    if (e.threshold !== undefined) a.threshold = e.threshold
    if (e.peak !== undefined) a.peak = Math.max(a.peak ?? e.peak, e.peak)
  }
  return [...byId.values()]
    .filter(
      (a) =>
        (filter.state === undefined || a.state === filter.state) &&
        (filter.severity === undefined || a.severity === filter.severity) &&
        (filter.device === undefined || a.device === filter.device) &&
        (filter.type === undefined || a.type === filter.type),
    )
    .sort((x, y) => (x.raisedAt < y.raisedAt ? 1 : x.raisedAt > y.raisedAt ? -1 : 0))
}
