/**
 * A pair of linked pseudo-terminals made by socat, standing in for an RS-485 adapter and the bus
 * behind it: what is written to one end is read from the other.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { waitFor } from './wait.ts'

/** For `describeWith`: suites over ptys skip loudly without socat, and fail under CI. */
export const SOCAT = { name: 'socat', debianPackage: 'socat' }

export interface PtyPair {
  /** The gateway's end (the master's adapter). */
  readonly master: string
  /** The simulated slaves' end. */
  readonly slaves: string
  /** Ends socat: both ends disappear, as an unplugged USB adapter does. */
  kill(): Promise<void>
  /** Makes the pair again at the same paths (after kill). */
  restart(): Promise<void>
}

export async function startPtyPair(dir = mkdtempSync(join(tmpdir(), 'gridwatch-pty-'))): Promise<PtyPair> {
  const master = join(dir, 'master')
  const slaves = join(dir, 'slaves')
  let child: ChildProcess | undefined

  const start = async () => {
    const proc = spawn(SOCAT.name, [`pty,raw,echo=0,link=${master}`, `pty,raw,echo=0,link=${slaves}`], { stdio: 'ignore' })
    child = proc
    const exited = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`socat exited with ${code}`))))
    exited.catch(() => undefined)
    await Promise.race([waitFor(() => (existsSync(master) && existsSync(slaves) ? true : undefined), { what: 'socat pty links', timeoutMs: 5000, intervalMs: 10 }), exited])
  }
  const kill = async () => {
    const proc = child
    child = undefined
    if (!proc || proc.exitCode !== null) return
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
    proc.kill('SIGTERM')
    await gone
    // socat removes its links on SIGTERM; wait so a restart cannot see the old ones.
    await waitFor(() => (!existsSync(master) && !existsSync(slaves) ? true : undefined), { what: 'socat links removed', timeoutMs: 5000, intervalMs: 10 })
  }
  await start()
  return { master, slaves, kill, restart: start }
}
