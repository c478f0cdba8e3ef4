/**
 * npm run chaos [-- --quick] [-- --only gateway_killed,cloud_down,influx_down,quota_hit]
 *
 * The store-and-forward promise under abuse, on the production bundles (dist/):
 *   1. gateway_killed  SIGKILL at random moments during a 20,000-message QoS 1 stream, 10 times
 *   2. cloud_down      the cloud API down for 10 minutes under steady load
 *   3. influx_down     InfluxDB down under load: 503s, the gateway holds, nothing lost
 *   4. quota_hit       the gateway's disk quota reached while the center is unreachable
 * `--quick` uses the CI sizes (the cloud down for 2 minutes). The CI test runs the same scenarios
 * from the TypeScript sources (test/chaos/chaos.test.ts).
 *
 * Last line: {"bench":"chaos","scenarios":[{"name",…,"sent","acked","delivered","lost","duplicates_in_store"},…]}
 */
import { argValue } from '../common/process.ts'
import { cloudDown, gatewayKilled, influxDown, quotaHit } from '../test/chaos/scenarios.ts'
import type { ScenarioResult } from '../test/chaos/harness.ts'

const quick = process.argv.includes('--quick')
const only = argValue(process.argv, '--only')?.split(',')
const plan: [string, () => Promise<ScenarioResult>][] = [
  ['gateway_killed', () => gatewayKilled('dist', { messages: 20_000, kills: 10, streamSeconds: 30 })],
  ['cloud_down', () => cloudDown('dist', { downSeconds: quick ? 120 : 600, rate: 500 })],
  ['influx_down', () => influxDown('dist', { downSeconds: quick ? 20 : 60, rate: 500 })],
  ['quota_hit', () => quotaHit('dist', { quotaMb: 3, messages: 20_000 })],
]

const results: ScenarioResult[] = []
for (const [name, run] of plan) {
  if (only && !only.includes(name)) continue
  const started = Date.now()
  const r = await run()
  results.push(r)
  const { name: _n, sent, acked, delivered, lost, duplicates_in_store, ...extra } = r
  console.log(`${name.padEnd(15)} sent ${sent}  acked ${acked}  delivered ${delivered}  lost ${lost}  duplicates ${duplicates_in_store}  (${((Date.now() - started) / 1000).toFixed(0)} s)`)
  console.log(`${''.padEnd(15)} ${JSON.stringify(extra)}`)
}
console.log(JSON.stringify({ bench: 'chaos', scenarios: results }))
