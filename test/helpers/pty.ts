/**
 * A pair of linked pseudo-terminals made by socat (devices/serial/pty-pair.ts), standing in for an
 * RS-485 adapter and the bus behind it, with the unplug and replug a test needs.
 */
import { join } from 'node:path'
import { startPtyPair as startPair, type PtyPair as Pair } from '../../devices/serial/pty-pair.ts'
import { testTempDir } from './temp.ts'

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

export async function startPtyPair(dir = testTempDir('gridwatch-pty-')): Promise<PtyPair> {
  const master = join(dir, 'master')
  const slaves = join(dir, 'slaves')
  let pair: Pair | undefined = await startPair(master, slaves)
  return {
    master,
    slaves,
    async kill() {
      const current = pair
      pair = undefined
      await current?.close()
    },
    async restart() {
      pair = await startPair(master, slaves)
    },
  }
}
