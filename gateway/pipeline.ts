/**
 * Where a device message goes after its input: normalize → rules → outbox.
 * Every input (MQTT, serial, HTTP) calls `accept()` and acknowledges its device only after the
 * returned promise resolves, which is after the outbox commit.
 */
import type { AlertEnvelope } from '../contracts/envelope.ts'
import type { DeviceKind } from '../contracts/topics.ts'
import { LogLimiter } from '../common/log-limiter.ts'
import type { Logger } from '../common/logger.ts'
import type { Rejection } from './errors.ts'
import type { GatewayMetrics } from './metrics.ts'
import type { Normalizer } from './normalize/normalize.ts'
import type { Outbox, Transmission } from './outbox/outbox.ts'
import type { RuleEngine } from './rules/engine.ts'

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

export type Outcome = { ok: true } | { ok: false; rejection: Rejection }

export interface PipelineDeps {
  normalizer: Normalizer
  rules: RuleEngine
  outbox: Outbox
  metrics: GatewayMetrics
  logger: Logger
}

export class Pipeline {
  private readonly warnLimiter = new LogLimiter()
  /** Labelled counters resolved once: prom-client hashes a label object on every inc() otherwise. */
  private readonly receivedBy = new Map<string, Map<string, { inc(): void }>>()

  constructor(private readonly deps: PipelineDeps) {}

  private countReceived(input: string, kind: string): void {
    let byKind = this.receivedBy.get(input)
    if (!byKind) this.receivedBy.set(input, (byKind = new Map<string, { inc(): void }>()))
    let counter = byKind.get(kind)
    if (!counter) byKind.set(kind, (counter = this.deps.metrics.received.labels(input, kind)))
    counter.inc()
  }

  /**
   * Normalizes, runs the rules and commits. Calls back once, after the commit: with an error
   * only when the outbox could not commit (the device must not be acknowledged), with a
   * rejection for a message that can never be accepted (the device should not resend it), or
   * with neither. Callback style: this runs for every device message, and the MQTT input hands
   * Aedes's own callback straight through.
   */
  accept(msg: DeviceMessage, done: (err: Error | null, rejection?: Rejection) => void): void {
    const { normalizer, rules, outbox, metrics } = this.deps
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
    const out = rules.evaluate(envelope)
    for (const rule of out.suppressed) metrics.suppressed.inc({ rule })
    if (out.alerts.length === 0) {
      outbox.appendCb([envelope], out.state, (err) => this.committed(err, undefined, done), msg.transmission)
    } else {
      outbox.appendCb([envelope, ...out.alerts], out.state, (err) => this.committed(err, out.alerts, done), msg.transmission)
    }
  }

  /** The same as accept(), as a promise, for inputs off the hot path and for tests. */
  acceptAsync(msg: DeviceMessage): Promise<Outcome> {
    return new Promise((resolve, reject) =>
      this.accept(msg, (err, rejection) => (err ? reject(err) : resolve(rejection ? { ok: false, rejection } : { ok: true }))),
    )
  }

  private committed(err: Error | null, alerts: readonly AlertEnvelope[] | undefined, done: (err: Error | null) => void): void {
    if (err) {
      // The rules' memory already moved on; put it back to what is on disk, which is what the
      // cloud will see, so the device's resend is judged afresh.
      this.deps.rules.restore(this.deps.outbox.loadState())
      done(err)
      return
    }
    if (alerts) {
      for (const a of alerts) {
        this.deps.metrics.alerts.inc({ type: a.payload.type, state: a.payload.state })
        this.deps.logger.info(
          { device: a.device, kind: 'alert', alertId: a.payload.alertId, type: a.payload.type, state: a.payload.state, severity: a.payload.severity },
          a.payload.message,
        )
      }
    }
    done(null)
  }

  /** For inputs that reject a message before it has a kind (an MQTT topic outside the scheme). */
  rejectedTopic(input: string, deviceId: string, topic: string): void {
    this.rejected(input, deviceId, undefined, { code: 'GW_TOPIC_INVALID', message: `"${topic}" is not dev/{deviceId}/{kind}` })
  }

  private rejected(input: string, deviceId: string, kind: string | undefined, rejection: Rejection): void {
    this.deps.metrics.rejected.inc({ input, code: rejection.code })
    const held = this.warnLimiter.take(`${deviceId}:${rejection.code}`)
    if (held < 0) return
    this.deps.logger.warn(
      { code: rejection.code, input, device: deviceId, kind, problems: rejection.problems, heldBack: held },
      rejection.message,
    )
  }
}
