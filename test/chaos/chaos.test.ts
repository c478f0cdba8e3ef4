/**
 * The store-and-forward chaos scenarios, short versions for CI (the full run is `npm run chaos`).
 * Gateway and cloud API run as real processes from the TypeScript sources, killed and restarted
 * for real; a real influxd goes down and comes back.
 */
import { describe, expect, it } from 'vitest'
import { describeWith, INFLUXD } from '../helpers/binaries.ts'
import { cloudDown, gatewayKilled, influxDown, quotaHit } from './scenarios.ts'

const MINUTE = 60_000

describe('chaos: store and forward', () => {
  it('gateway killed with SIGKILL 10 times during a 20,000-message QoS 1 stream: no acknowledged message lost', async () => {
    const r = await gatewayKilled('source', { messages: 20_000, kills: 10, streamSeconds: 30 })
    expect(r).toMatchObject({ sent: 20_000, acked: 20_000, lost: 0, duplicates_in_store: 0, kills: 10, per_device_order: true })
    expect(r.delivered).toBe(20_000)
  }, 6 * MINUTE)

  it('cloud API down for 2 minutes under steady load: all delivered once, in order, first retry within 5 s, drained at 3x live', async () => {
    const r = await cloudDown('source', { downSeconds: 120, rate: 500 })
    expect(r).toMatchObject({ lost: 0, duplicates_in_store: 0, per_device_order: true })
    expect(r.delivered).toBe(r.acked)
    expect(r.backlog).toBeGreaterThan(50_000)
    expect(r.first_retry_s).toBeLessThanOrEqual(5)
    expect(r.drain_vs_live).toBeGreaterThanOrEqual(3)
  }, 8 * MINUTE)

  it('disk quota reached while the center is away: telemetry evicted with gap records, alerts and scans all kept', async () => {
    const r = await quotaHit('source', { quotaMb: 3, messages: 20_000 })
    expect(r).toMatchObject({ acked: 20_000, lost: 0, duplicates_in_store: 0 })
    expect(r.readings_evicted_per_gaps).toBeGreaterThan(0)
    expect(r.readings_missing).toBe(r.readings_evicted_per_gaps)
    expect(r.scans_delivered).toBe(r.scans_acked)
    expect(r.events_evicted).toBe(0)
    expect(r.alerts_raised_delivered).toBe(r.alarm_readings_acked)
    expect(r.gap_records_in_cloud).toBeGreaterThan(0)
  }, 6 * MINUTE)
})

describeWith([INFLUXD])('chaos: InfluxDB down', () => {
  it('the cloud answers 503 and is not ready, the gateway holds its data, nothing is lost', async () => {
    const r = await influxDown('source', { downSeconds: 20, rate: 500 })
    expect(r).toMatchObject({ lost: 0, duplicates_in_store: 0, readyz_while_down: 503 })
    expect(r.held_by_gateway).toBeGreaterThan(1000)
    expect(r.delivered).toBeGreaterThanOrEqual(r.acked)
  }, 5 * MINUTE)
})
