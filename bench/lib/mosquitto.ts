/**
 * A real Mosquitto broker on a free port, as the third-party peer benchmarks compare against.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createConnection } from 'node:net'
import { freePort } from '../../common/ports.ts'
import { startProcess, type Child } from './proc.ts'

export interface RunningMosquitto {
  port: number
  child: Child
  stop(): Promise<void>
}

export async function startMosquitto(): Promise<RunningMosquitto> {
  const dir = mkdtempSync(join(tmpdir(), 'gridwatch-mosquitto-'))
  const port = await freePort()
  const conf = join(dir, 'mosquitto.conf')
  // Lab settings for a pass-through comparison: anonymous, in memory, no per-client queue cap
  // below what the load generator's window needs.
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 0\nmax_queued_messages 100000\nlog_type error\n`)
  const child = startProcess('mosquitto', ['-c', conf])
  const deadline = Date.now() + 10_000
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const s = createConnection(port, '127.0.0.1', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (up) break
    if (child.proc.exitCode !== null || Date.now() > deadline) throw new Error(`mosquitto did not start: ${child.output()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    port,
    child,
    async stop() {
      await child.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
