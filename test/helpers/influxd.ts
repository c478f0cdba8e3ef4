/**
 * A real InfluxDB 1.x (Debian's `influxd`) for one test file: temporary config, data directory
 * and ports, stopped and removed afterwards.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../../common/ports.ts'
import { waitFor } from './wait.ts'

export interface RunningInfluxd {
  url: string
  stop(): Promise<void>
}

export async function startInfluxd(): Promise<RunningInfluxd> {
  const dir = mkdtempSync(join(tmpdir(), 'gridwatch-influxd-'))
  const [httpPort, rpcPort] = [await freePort(), await freePort()]
  const config = join(dir, 'influxdb.conf')
  writeFileSync(
    config,
    `reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"
[meta]
  dir = "${join(dir, 'meta')}"
  logging-enabled = false
[data]
  dir = "${join(dir, 'data')}"
  wal-dir = "${join(dir, 'wal')}"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:${httpPort}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  log-enabled = false
`,
  )
  const proc = spawn('influxd', ['-config', config], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  proc.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000)
  })
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  const url = `http://127.0.0.1:${httpPort}`
  try {
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`influxd exited: ${stderr}`)
        return (await fetch(`${url}/ping`)).status === 204 ? true : undefined
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'influxd /ping' },
    )
  } catch (err) {
    proc.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
  return {
    url,
    async stop() {
      proc.kill('SIGTERM')
      await exited
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
