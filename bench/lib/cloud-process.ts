/**
 * The production cloud-api bundle as its own process on an InfluxDB store, for benches that
 * measure the API's CPU apart from the bench client's. Resolves once /healthz answers; throws
 * with the process's last output if it exits first.
 *
 * BENCH_API_NODE_FLAGS (e.g. "--cpu-prof --cpu-prof-dir=scratch/prof") shows where its time goes.
 */
import { join } from 'node:path'
import { startProcess, type Child } from './proc.ts'
import { waitUntil } from './stack.ts'

export async function startCloudApi(o: { dist: string; dir: string; configPath: string; port: number; influxUrl: string; database: string }): Promise<Child> {
  const nodeFlags = (process.env.BENCH_API_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean)
  const child = startProcess(process.execPath, [...nodeFlags, join(o.dist, 'cloud-api.mjs'), '--config', o.configPath], {
    cwd: o.dir,
    env: { ...process.env, LOG_LEVEL: 'warn', STORE: 'influx', INFLUX_URL: o.influxUrl, INFLUX_DB: o.database },
  })
  const url = `http://127.0.0.1:${o.port}`
  await Promise.race([
    waitUntil(async () => ((await fetch(`${url}/healthz`)).ok ? true : undefined), 60_000, `${url}/healthz`),
    child.exited.then((code) => {
      throw new Error(`cloud-api exited with ${code}`)
    }),
  ]).catch((err: Error) => {
    throw new Error(`${err.message}\n${child.output().slice(-3000)}`)
  })
  return child
}
