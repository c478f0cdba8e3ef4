/**
 * A real Mosquitto broker on a free port, as the third-party peer benchmarks compare against.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { createConnection } from 'node:net'
import { execFileSync } from 'node:child_process'
import { freePort } from '../../common/ports.ts'
import { startProcess, type Child } from './proc.ts'

export interface RunningMosquitto {
  port: number
  child: Child
  stop(): Promise<void>
}

/**
 * Without options: lab settings for a pass-through comparison (anonymous, in memory, no
 * per-client queue cap below what the load generator's window needs). `maxInflight` and
 * `maxQueued` set max_inflight_messages and max_queued_messages (0: no limit). With `users`, a
 * password file made by mosquitto_passwd and no anonymous access, as an office would run it.
 */
export async function startMosquitto(options: { users?: Record<string, string>; port?: number; maxInflight?: number; maxQueued?: number } = {}): Promise<RunningMosquitto> {
  const dir = mkdtempSync(join(tmpdir(), 'gridwatch-mosquitto-'))
  const port = options.port ?? (await freePort())
  const conf = join(dir, 'mosquitto.conf')
  let auth = 'allow_anonymous true\n'
  if (options.users) {
    const passwords = join(dir, 'passwords')
    writeFileSync(passwords, '')
    for (const [user, password] of Object.entries(options.users)) execFileSync('mosquitto_passwd', ['-b', passwords, user, password])
    // Run as root, Mosquitto drops to user "mosquitto", which cannot read our private temp dir.
    auth = `allow_anonymous false\npassword_file ${passwords}\nuser ${userInfo().username}\n`
  }
  writeFileSync(conf, `listener ${port} 127.0.0.1\n${auth}persistence false\nmax_inflight_messages ${options.maxInflight ?? 0}\nmax_queued_messages ${options.maxQueued ?? 100_000}\nlog_type error\n`)
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
