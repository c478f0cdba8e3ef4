/**
 * The rule engine of a test office, with an in-memory stand-in for the outbox's stamp and state
 * table, and a clock the test moves. Collects every alert in order.
 */
import type { AlertEnvelope, Envelope, EnvelopeDraft } from '../../contracts/envelope.ts'
import { RuleEngine } from '../../gateway/rules/engine.ts'
import type { RuleOutput } from '../../gateway/rules/rule.ts'
import type { GatewayConfig } from '../../gateway/config/schema.ts'
import { testOfficeConfig } from './office.ts'

const MINUTE = 60_000

/** 2026-11-25 (a Wednesday) 08:00 in the office's time zone (+08:00). */
export const LOCAL_0800 = Date.UTC(2026, 10, 25, 0, 0)

export class RulesHarness {
  readonly config: GatewayConfig
  engine: RuleEngine
  readonly state = new Map<string, string>()
  readonly alerts: AlertEnvelope[] = []
  readonly derived: Envelope[] = []
  readonly outputs: RuleOutput[] = []
  private seq = 0

  constructor(overrides: Record<string, unknown> = {}) {
    this.config = testOfficeConfig(overrides)
    this.engine = RuleEngine.forOffice(this.config, this.stamp)
  }

  stamp = (d: EnvelopeDraft): Envelope => ({ ...d, id: `gw:${++this.seq}`, seq: this.seq })

  /** A new engine resuming from the persisted state: what a gateway restart does. */
  restart(): void {
    this.engine = RuleEngine.forOffice(this.config, this.stamp)
    this.engine.restore(this.state)
  }

  feed(draft: EnvelopeDraft, now = draft.ts): RuleOutput {
    return this.collect(this.engine.evaluate(this.stamp(draft), now))
  }

  tick(now: number): RuleOutput {
    return this.collect(this.engine.tick(now))
  }

  /** Ticks once a minute from `from` to `to` inclusive. */
  tickEveryMinute(from: number, to: number): void {
    for (let t = from; t <= to; t += MINUTE) this.tick(t)
  }

  private collect(out: RuleOutput): RuleOutput {
    this.alerts.push(...out.alerts)
    this.derived.push(...out.derived)
    for (const w of out.state) {
      if (w.value === null) this.state.delete(w.key)
      else this.state.set(w.key, w.value)
    }
    this.outputs.push(out)
    return out
  }

  /** [type, state] of every alert so far, optionally of one device. */
  summary(device?: string): [string, string][] {
    return this.alerts.filter((a) => device === undefined || a.device === device).map((a) => [a.payload.type, a.payload.state])
  }

  reading(device: string, ts: number, value: number, quantity = 'gas', unit = '%LEL'): EnvelopeDraft {
    return { gateway: 'gw-tangquan-01', office: 'tangquan', device, ts, kind: 'reading', payload: { quantity, value, unit } }
  }

  scan(ts: number, checkpoint: string | undefined, tag = 'TAG', staff = 'staff-zhang-wei', method: 'nfc' | 'wand' = 'nfc', device = 'phone-001'): EnvelopeDraft {
    return { gateway: 'gw-tangquan-01', office: 'tangquan', device, ts, kind: 'scan', payload: { tag, staff, method, ...(checkpoint ? { checkpoint } : {}) } }
  }

  camera(ts: number, event = 'intrusion', confidence = 0.9, device = 'cam-001'): EnvelopeDraft {
    return { gateway: 'gw-tangquan-01', office: 'tangquan', device, ts, kind: 'camera', payload: { event, confidence, region: 'north gate' } }
  }
}

export const minutes = (n: number) => n * MINUTE
