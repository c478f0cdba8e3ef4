/**
 * Runs every rule over each envelope, in a fixed order, and gathers what they produce.
 */
import type { Envelope } from '../../contracts/envelope.ts'
import type { GatewayConfig } from '../config/schema.ts'
import { CameraRule } from './camera.ts'
import { PatrolRule } from './patrol.ts'
import { RuleOutput, type Rule, type Stamp } from './rule.ts'
import { ThresholdRule } from './threshold.ts'

export class RuleEngine {
  constructor(
    private readonly rules: readonly Rule[],
    private readonly stamp: Stamp,
  ) {}

  static forOffice(config: GatewayConfig, stamp: Stamp): RuleEngine {
    return new RuleEngine([new ThresholdRule(config.thresholds), new CameraRule(config.camera), new PatrolRule()], stamp)
  }

  evaluate(envelope: Envelope): RuleOutput {
    const out = new RuleOutput(this.stamp, envelope)
    for (const rule of this.rules) rule.evaluate(envelope, out)
    return out
  }

  restore(state: ReadonlyMap<string, string>): void {
    for (const rule of this.rules) rule.restore(state)
  }
}
