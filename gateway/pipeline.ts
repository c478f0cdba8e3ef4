/**
 * Where a device message goes after its input: normalize → rules → reduction → outbox.
 * Every input (MQTT, serial, HTTP) calls `accept()` and acknowledges its device only after the
 * callback, which comes after the outbox commit. The clock drives `tick()` for what time alone
 * decides (stale sensors, tours due, minute aggregates).
 */
import type { AlertEnvelope, Envelope } from '../contracts/envelope.ts'
import type { DeviceKind } from '../contracts/topics.ts'
import { LogLimiter } from '../common/log-limiter.ts'
import type { Logger } from '../common/logger.ts'
import type { Rejection } from './errors.ts'
import type { GatewayMetrics } from './metrics.ts'
import type { Normalizer } from './normalize/normalize.ts'
import type { Outbox, Transmission } from './outbox/outbox.ts'
import type { RawStore } from './raw/raw-store.ts'
import type { Reducer } from './reduce/reducer.ts'
import type { RuleEngine } from './rules/engine.ts'
import type { Receipt, RuleOutput } from './rules/rule.ts'

export interface DeviceMessage {
  /** Which input it came through: mqtt, serial, http, ... (a metric label). */
  input: string
  deviceId: string
  kind: DeviceKind
  raw: Buffer
  receivedAt: number
  /** Set by inputs whose transport can redeliver (MQTT QoS 1); see Outbox.isCommitted. */
  transmission?: Transmission
}

export type Outcome = { ok: true; receipt?: Receipt } | { ok: false; rejection: Rejection }

/** Called once per message: after the commit, or at once when nothing needed committing. */
export type AcceptCallback = (err: Error | null, rejection?: Rejection, receipt?: Receipt) => void

export interface PipelineDeps {
  normalizer: Normalizer
  rules: RuleEngine
  reducer: Reducer
  raw: RawStore
  outbox: Outbox
  metrics: GatewayMetrics
  logger: Logger
}

export class Pipeline {
  private readonly warnLimiter = new LogLimiter()
  /** Labelled counters resolved once: prom-client hashes a label object on every inc() otherwise. */
  private readonly receivedBy = new Map<string, Map<string, { inc(): void }>>()

  constructor(private deps: PipelineDeps) {}

  /** A config reload swaps the office-dependent parts; the outbox, and what it holds, stay. */
  replace(parts: Pick<PipelineDeps, 'normalizer' | 'rules' | 'reducer'>): void {
    this.deps = { ...this.deps, ...parts }
  }

  get reducer(): Reducer {
    return this.deps.reducer
  }

  get rules(): RuleEngine {
    return this.deps.rules
  }

  private countReceived(input: string, kind: string): void {
    let byKind = this.receivedBy.get(input)
    if (!byKind) this.receivedBy.set(input, (byKind = new Map<string, { inc(): void }>()))
    let counter = byKind.get(kind)
    if (!counter) byKind.set(kind, (counter = this.deps.metrics.received.labels(input, kind)))
    counter.inc()
  }

  /**
   * Normalizes, runs the rules, reduces and commits. Calls back once: with an error only when the
   * outbox could not commit (the device must not be acknowledged); with a rejection for a message
   * that can never be accepted (the device should not resend it); with a receipt for a scan.
   * Callback style: this runs for every device message, and the MQTT input hands Aedes's own
   * callback straight through.
   */
  accept(msg: DeviceMessage, done: AcceptCallback): void {
    const { normalizer, rules, outbox, metrics, reducer, raw } = this.deps
    this.countReceived(msg.input, msg.kind)
    if (msg.transmission && outbox.isCommitted(msg.transmission)) {
      metrics.redeliveries.inc({ input: msg.input })
      done(null)
      return
    }
    const result = normalizer.normalize(msg.deviceId, msg.kind, msg.raw, msg.receivedAt)
    if (!result.ok) {
      this.rejected(msg.input, msg.deviceId, msg.kind, result.rejection)
      done(null, result.rejection)
      return
    }
    if (result.timeReplaced) metrics.sourceTimeReplaced.inc({ reason: result.timeReplaced })

    const envelope = outbox.stamp(result.draft)
    const out = rules.evaluate(envelope, msg.receivedAt)
    for (const rule of out.suppressed) metrics.suppressed.inc({ rule })
    let commit: Envelope[]
    if (out.drop) {
      commit = []
    } else if (envelope.kind === 'reading') {
      raw.add(envelope)
      reducer.add(envelope)
      commit = reducer.forward(envelope, out.alerts.length > 0) ? [envelope] : []
      if (commit.length === 0) metrics.reduced.inc()
    } else {
      commit = [envelope]
    }
    if (out.alerts.length > 0) commit.push(...out.alerts)
    if (out.derived.length > 0) commit.push(...out.derived)
    if (commit.length === 0 && out.state.length === 0) {
      // Nothing to make durable: a reading summarised by its aggregate, or a double scan.
      done(null, undefined, out.receipt)
      return
    }
    outbox.appendCb(commit, out.state, (err) => this.committed(err, out, done), msg.transmission)
  }

  /** The same as accept(), as a promise, for inputs off the hot path and for tests. */
  acceptAsync(msg: DeviceMessage): Promise<Outcome> {
    return new Promise((resolve, reject) =>
      this.accept(msg, (err, rejection, receipt) => {
        if (err) reject(err)
        else resolve(rejection ? { ok: false, rejection } : receipt ? { ok: true, receipt } : { ok: true })
      }),
    )
  }

  /** Runs the clock-driven rules and closes finished minutes; commits what they produced. */
  tick(now = Date.now()): void {
    const { rules, outbox, reducer, raw } = this.deps
    const out = rules.tick(now)
    const aggregates = reducer.flush(now)
    raw.prune(now)
    const commit: Envelope[] = [...out.alerts, ...out.derived, ...aggregates]
    if (commit.length === 0 && out.state.length === 0) return
    outbox.appendCb(commit, out.state, (err) =>
      this.committed(err, out, (e) => {
        if (e) this.deps.logger.error({ err: e, code: 'GW_OUTBOX_COMMIT_FAILED' }, 'could not commit what the clock produced')
      }),
    )
  }

  private committed(err: Error | null, out: RuleOutput, done: AcceptCallback): void {
    if (err) {
      // The rules' memory already moved on; put it back to what is on disk, which is what the
      // cloud will see, so the device's resend is judged afresh.
      this.deps.rules.restore(this.deps.outbox.loadState())
      done(err)
      return
    }
    for (const a of out.alerts) this.announce(a)
    done(null, undefined, out.receipt)
  }

  private announce(a: AlertEnvelope): void {
    this.deps.metrics.alerts.inc({ type: a.payload.type, state: a.payload.state })
    this.deps.logger.info(
      { device: a.device, kind: 'alert', alertId: a.payload.alertId, type: a.payload.type, state: a.payload.state, severity: a.payload.severity, level: a.payload.level },
      a.payload.message,
    )
  }

  /** For inputs that reject a message before it has a kind (an MQTT topic outside the scheme). */
  rejectedTopic(input: string, deviceId: string, topic: string): void {
    this.rejected(input, deviceId, undefined, { code: 'GW_TOPIC_INVALID', message: `"${topic}" is not dev/{deviceId}/{kind}` })
  }

  private rejected(input: string, deviceId: string, kind: string | undefined, rejection: Rejection): void {
    this.deps.metrics.rejected.inc({ input, code: rejection.code })
    const held = this.warnLimiter.take(`${deviceId}:${rejection.code}`)
    if (held < 0) return
    this.deps.logger.warn({ code: rejection.code, input, device: deviceId, kind, problems: rejection.problems, heldBack: held }, rejection.message)
  }
}
