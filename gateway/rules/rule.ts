/**
 * The seam every rule plugs into. A rule sees one envelope at a time (`evaluate`) and, for what
 * time alone decides (a stale sensor, a tour not started), the clock (`tick`). It may raise,
 * update or clear alerts, emit derived envelopes (incidents), answer a scan with a receipt, and
 * record state changes, which the pipeline commits in the same outbox transaction as the alerts:
 * state on disk always matches the alerts that left.
 */
import type { AlertEnvelope, AlertPayload, Envelope, EnvelopeDraft, Level, Severity } from '../../contracts/envelope.ts'
import type { StateWrite } from '../outbox/outbox.ts'

export type Stamp = (draft: EnvelopeDraft) => Envelope

export interface Rule {
  readonly name: string
  evaluate?(envelope: Envelope, out: RuleOutput): void
  /** Time-driven checks; `out.now` is the gateway clock. */
  tick?(out: RuleOutput): void
  /** Resumes from persisted state: every key this rule wrote and did not delete. */
  restore(state: ReadonlyMap<string, string>): void
}

/** What an alert is about when no envelope caused it (a tick): the device and the time. */
export interface AlertFrame {
  device: string
  ts: number
  /** Overrides the device's configured owner; null says it had none (nothing is filled in). */
  enterprise?: string | null
  /** As enterprise. */
  grid?: string | null
}

/** The answer a patrol phone gets on `cmd/{deviceId}/receipt` for a scan. */
export interface Receipt {
  status: 'accepted' | 'rejected'
  reason?: string
  checkpoint?: string
  tour?: string
  /** The checkpoint to walk to next, when the route says. */
  next?: string
  remaining?: number
}

type AlertFields = Omit<AlertPayload, 'alertId' | 'state' | 'cause' | 'level'>

/** Decides whether a raise may go out (the storm guard); false holds it back. */
export interface RaiseGate {
  allow(device: string, out: RuleOutput, fields: AlertFields): boolean
}

export type LevelOf = (type: string, severity: Severity) => Level

/** What evaluating one envelope (or one tick) produced. Envelopes are stamped in the order made. */
export class RuleOutput {
  alerts: AlertEnvelope[] = []
  /** Envelopes other than alerts that rules derived (incidents). */
  derived: Envelope[] = []
  state: StateWrite[] = []
  suppressed: string[] = []
  receipt: Receipt | undefined
  /** Set by a rule that finds the source envelope must not be stored (a double scan). */
  drop: string | undefined

  constructor(
    private readonly stamp: Stamp,
    private readonly levelOf: LevelOf,
    /** The gateway clock: receive time for an envelope, the tick time for a tick. */
    readonly now: number,
    readonly source: Envelope | undefined,
    private readonly gate: RaiseGate | undefined,
    private readonly frameOf: (device: string) => { enterprise?: string; grid?: string },
    private readonly envelopeFrame: { gateway: string; office: string },
  ) {}

  /** Raises a new alert; its id is the id of this raising envelope. Undefined if held back. */
  raise(fields: AlertFields, frame?: AlertFrame): string | undefined {
    const device = frame?.device ?? this.source?.device
    if (device === undefined) throw new Error('an alert without a source needs a frame')
    if (this.gate && !this.gate.allow(device, this, fields)) return undefined
    return this.raiseUngated(fields, frame)
  }

  /** For the storm guard's own alert, which must not be held back by itself. */
  raiseUngated(fields: AlertFields, frame?: AlertFrame): string {
    const alert = this.stamp(this.draft({ ...fields, alertId: '', state: 'raised' }, frame)) as AlertEnvelope
    alert.payload.alertId = alert.id
    this.alerts.push(alert)
    return alert.id
  }

  follow(alertId: string, state: 'updated' | 'cleared', fields: AlertFields, frame?: AlertFrame): void {
    this.alerts.push(this.stamp(this.draft({ ...fields, alertId, state }, frame)) as AlertEnvelope)
  }

  /** Stamps and keeps a derived envelope (an incident); its frame is the source's. */
  derive(draft: EnvelopeDraft): Envelope {
    const e = this.stamp(draft)
    this.derived.push(e)
    return e
  }

  levelFor(type: string, severity: Severity): Level {
    return this.levelOf(type, severity)
  }

  put(key: string, value: unknown): void {
    this.state.push({ key, value: value === null ? null : JSON.stringify(value) })
  }

  suppress(rule: string): void {
    this.suppressed.push(rule)
  }

  private draft(payload: Omit<AlertPayload, 'cause' | 'level'>, frame: AlertFrame | undefined): EnvelopeDraft {
    const device = frame?.device ?? this.source!.device
    const where: { enterprise?: string; grid?: string } = frame
      ? { ...this.frameOf(device), ...withoutUndefined({ enterprise: frame.enterprise ?? undefined, grid: frame.grid ?? undefined }) }
      : pick(this.source!)
    if (frame?.enterprise === null) delete where.enterprise
    if (frame?.grid === null) delete where.grid
    return {
      ...this.envelopeFrame,
      device,
      ...where,
      // An alert carries the source time of the data that caused it (stable on replay), or, raised
      // by the clock, the time it was detected.
      ts: frame?.ts ?? this.source!.ts,
      kind: 'alert',
      payload: {
        ...payload,
        // Messages are built from what the field sent (an SOS's text, every missed checkpoint's
        // name) and may run past the contract's 512; the center would refuse the alert whole.
        message: fitText(payload.message, ALERT_MESSAGE_MAX),
        level: this.levelOf(payload.type, payload.severity),
        ...(this.source && !frame ? { cause: this.source.id } : {}),
      },
    }
  }
}

function pick(e: Envelope): { enterprise?: string; grid?: string } {
  return withoutUndefined({ enterprise: e.enterprise, grid: e.grid })
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}

/** Reads this rule's keys (`{prefix}:...`) back out of persisted state. */
export function ownState<T>(state: ReadonlyMap<string, string>, prefix: string): Map<string, T> {
  const out = new Map<string, T>()
  for (const [key, value] of state) {
    if (key.startsWith(prefix + ':')) out.set(key, JSON.parse(value) as T)
  }
  return out
}

/** AlertPayload's `message` limit (contracts/envelope.ts). */
const ALERT_MESSAGE_MAX = 512

/** `text` cut to at most `max` UTF-16 units, ending in `…` when cut, never inside a surrogate pair. */
export function fitText(text: string, max: number): string {
  if (text.length <= max) return text
  let end = max - 1
  const last = text.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end--
  return `${text.slice(0, end)}…`
}
