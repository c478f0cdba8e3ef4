/**
 * The seam every rule plugs into. A rule sees one envelope at a time, may raise, update or clear
 * alerts, and records its state changes, which the pipeline commits in the same outbox
 * transaction as the alerts: state on disk always matches the alerts that left.
 */
import type { AlertEnvelope, AlertPayload, Envelope, EnvelopeDraft } from '../../contracts/envelope.ts'
import type { StateWrite } from '../outbox/outbox.ts'

export type Stamp = (draft: EnvelopeDraft) => Envelope

export interface Rule {
  readonly name: string
  evaluate(envelope: Envelope, out: RuleOutput): void
  /** Resumes from persisted state: every key this rule wrote and did not delete. */
  restore(state: ReadonlyMap<string, string>): void
}

type AlertFields = Omit<AlertPayload, 'alertId' | 'state' | 'cause'>

/** What evaluating one envelope produced. Alerts are stamped in the order they were made. */
export class RuleOutput {
  readonly alerts: AlertEnvelope[] = []
  readonly state: StateWrite[] = []
  readonly suppressed: string[] = []

  constructor(
    private readonly stamp: Stamp,
    private readonly source: Envelope,
  ) {}

  /** Raises a new alert; its id is the id of this raising envelope. */
  raise(fields: AlertFields): string {
    const alert = this.stamp(this.draft({ ...fields, alertId: '', state: 'raised' })) as AlertEnvelope
    alert.payload.alertId = alert.id
    this.alerts.push(alert)
    return alert.id
  }

  follow(alertId: string, state: 'updated' | 'cleared', fields: AlertFields): void {
    this.alerts.push(this.stamp(this.draft({ ...fields, alertId, state })) as AlertEnvelope)
  }

  put(key: string, value: unknown): void {
    this.state.push({ key, value: value === null ? null : JSON.stringify(value) })
  }

  suppress(rule: string): void {
    this.suppressed.push(rule)
  }

  private draft(payload: Omit<AlertPayload, 'cause'>): EnvelopeDraft {
    const { gateway, office, device, enterprise, ts } = this.source
    return {
      gateway,
      office,
      device,
      ...(enterprise !== undefined ? { enterprise } : {}),
      // The alert carries the source time of the data that caused it, so it too is stable on replay.
      ts,
      kind: 'alert',
      payload: { ...payload, cause: this.source.id },
    }
  }
}

/** Reads this rule's keys (`{prefix}:...`) back out of persisted state. */
export function ownState<T>(state: ReadonlyMap<string, string>, prefix: string): Map<string, T> {
  const out = new Map<string, T>()
  for (const [key, value] of state) {
    if (key.startsWith(prefix + ':')) out.set(key, JSON.parse(value) as T)
  }
  return out
}
