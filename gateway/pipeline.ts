/**
 * Where a device message goes after its input: normalize → rules → outbox.
 * Every input (MQTT, serial, HTTP) calls `accept()` and acknowledges its device only after the
 * returned promise resolves, which is after the outbox commit.
 */
import type { Envelope } from '../contracts/envelope.ts'
import type { DeviceKind } from '../contracts/topics.ts'
import { LogLimiter } from '../common/log-limiter.ts'
import type { Logger } from '../common/logger.ts'
import type { Rejection } from './errors.ts'
import type { GatewayMetrics } from './metrics.ts'
import type { Normalizer } from './normalize/normalize.ts'
import type { Outbox } from './outbox/outbox.ts'
import type { RuleEngine } from './rules/engine.ts'

export interface DeviceMessage {
  /** Which input it came through: mqtt, serial, http, ... (a metric label). */
  input: string
  deviceId: string
  kind: DeviceKind
  raw: Buffer
  receivedAt: number
}

export type Outcome = { ok: true; envelopes: Envelope[] } | { ok: false; rejection: Rejection }

export interface PipelineDeps {
  normalizer: Normalizer
  rules: RuleEngine
  outbox: Outbox
  metrics: GatewayMetrics
  logger: Logger
}

export class Pipeline {
  private readonly warnLimiter = new LogLimiter()

  constructor(private readonly deps: PipelineDeps) {}

  /**
   * Resolves with the committed envelopes, or with a rejection for a message that can never be
   * accepted (the device should not resend it). Rejects only when the outbox cannot commit, in
   * which case the device must not be acknowledged.
   */
  async accept(msg: DeviceMessage): Promise<Outcome> {
    const { normalizer, rules, outbox, metrics } = this.deps
    metrics.received.inc({ input: msg.input, kind: msg.kind })
    const result = normalizer.normalize(msg.deviceId, msg.kind, msg.raw, msg.receivedAt)
    if (!result.ok) {
      this.rejected(msg.input, msg.deviceId, msg.kind, result.rejection)
      return result
    }
    if (result.timeReplaced) metrics.sourceTimeReplaced.inc({ reason: result.timeReplaced })

    const envelope = outbox.stamp(result.draft)
    const out = rules.evaluate(envelope)
    for (const rule of out.suppressed) metrics.suppressed.inc({ rule })
    const envelopes: Envelope[] = [envelope, ...out.alerts]
    try {
      await outbox.append(envelopes, out.state)
    } catch (err) {
      // The rules' memory already moved on; put it back to what is on disk, which is what the
      // cloud will see, so the device's resend is judged afresh.
      rules.restore(outbox.loadState())
      throw err
    }
    for (const a of out.alerts) {
      metrics.alerts.inc({ type: a.payload.type, state: a.payload.state })
      this.deps.logger.info(
        { device: a.device, kind: 'alert', alertId: a.payload.alertId, type: a.payload.type, state: a.payload.state, severity: a.payload.severity },
        a.payload.message,
      )
    }
    return { ok: true, envelopes }
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
