/**
 * Runs every rule over each envelope, and over the clock, in a fixed order, and gathers what they
 * produce. The storm guard sits in front of every raise.
 */
import type { Envelope } from '../../contracts/envelope.ts'
import type { GatewayConfig } from '../config/schema.ts'
import { CameraRule } from './camera.ts'
import { Office } from './office.ts'
import { PatrolRule } from './patrol.ts'
import { RuleOutput, type Rule, type Stamp } from './rule.ts'
import { SensorHealthRule } from './sensor-health.ts'
import { StormGuard } from './storm.ts'
import { ThresholdRule } from './threshold.ts'
import { TourRule } from './tours.ts'

export class RuleEngine {
  readonly office: Office
  readonly thresholds: ThresholdRule
  readonly tours: TourRule
  private readonly rules: Rule[]
  private readonly storm: StormGuard

  constructor(
    config: GatewayConfig,
    private readonly stamp: Stamp,
  ) {
    this.office = new Office(config)
    this.storm = new StormGuard(config.storm)
    this.thresholds = new ThresholdRule(this.office)
    this.tours = new TourRule(this.office)
    // Patrol before tours: it marks double scans, which tours then ignore.
    this.rules = [new PatrolRule(this.office), this.thresholds, new SensorHealthRule(this.office), new CameraRule(this.office), this.tours, this.storm]
  }

  static forOffice(config: GatewayConfig, stamp: Stamp): RuleEngine {
    return new RuleEngine(config, stamp)
  }

  /** `now` is the gateway clock when the envelope arrived; rules judge by the envelope's own time. */
  evaluate(envelope: Envelope, now = Date.now()): RuleOutput {
    const out = this.output(now, envelope)
    for (const rule of this.rules) rule.evaluate?.(envelope, out)
    return out
  }

  /** Time-driven checks: stale sensors, tours due or over, storms ending. */
  tick(now = Date.now()): RuleOutput {
    const out = this.output(now, undefined)
    for (const rule of this.rules) rule.tick?.(out)
    return out
  }

  restore(state: ReadonlyMap<string, string>): void {
    for (const rule of this.rules) rule.restore(state)
  }

  private output(now: number, source: Envelope | undefined): RuleOutput {
    const { id: office } = this.office.config.office
    return new RuleOutput(this.stamp, this.office.levelOf, now, source, this.storm, (id) => this.office.frameOf(id), {
      gateway: this.office.config.gateway.id,
      office,
    })
  }
}
