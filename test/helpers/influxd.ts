/**
 * A real InfluxDB 1.x (Debian's `influxd`) for one test file: temporary config, data directory
 * and ports, stopped and removed afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../../common/ports.ts'
import { waitFor } from './wait.ts'
import { removeTestDir } from './temp.ts'

export interface RunningInfluxd {
  url: string
  /** Stops the server, keeping its data, config and ports (an outage). */
  pause(): Promise<void>
  /** Starts it again on the same data and ports; resolves when it answers /ping. */
  resume(): Promise<void>
  stop(): Promise<void>
}

/** `data` and `http`: extra lines for those sections of influxdb.conf (limits, say). */
export async function startInfluxd(extra: { data?: string; http?: string } = {}): Promise<RunningInfluxd> {
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
${extra.data ?? ''}
[http]
  enabled = true
  bind-address = "127.0.0.1:${httpPort}"
  log-enabled = false
${extra.http ?? ''}
[monitor]
  store-enabled = false
[continuous_queries]
  log-enabled = false
`,
  )
  const url = `http://127.0.0.1:${httpPort}`
  let proc: ChildProcess | undefined
  let exited: Promise<void> = Promise.resolve()
  let stderr = ''
  const launch = async () => {
    const p = spawn('influxd', ['-config', config], { stdio: ['ignore', 'ignore', 'pipe'] })
    proc = p
    p.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000)
    })
    exited = new Promise<void>((resolve) => p.once('exit', () => resolve()))
    await waitFor(
      async () => {
        if (p.exitCode !== null) throw new Error(`influxd exited: ${stderr}`)
        return (await fetch(`${url}/ping`)).status === 204 ? true : undefined
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'influxd /ping' },
    )
  }
  const halt = async () => {
    proc?.kill('SIGTERM')
    await exited
    proc = undefined
  }
  try {
    await launch()
  } catch (err) {
    proc?.kill('SIGKILL')
    removeTestDir(dir)
    throw err
  }
  return {
    url,
    pause: halt,
    resume: launch,
    async stop() {
      await halt()
      removeTestDir(dir)
    },
  }
}
