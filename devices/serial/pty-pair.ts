/**
 * A null-modem cable in software: `socat` joins two pseudo-terminals and names them with symlinks,
 * so the gateway opens one end as its "serial port" and a simulated reader or dock the other.
 * Killing the pair is how tests and benches pull the USB plug: the gateway's end reads EIO and
 * serialport closes it as disconnected; a new pair on the same link paths is the replug.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'

export interface PtyPair {
  /** Link to the gateway's end. */
  readonly gateway: string
  /** Link to the device's end. */
  readonly device: string
  readonly process: ChildProcess
  /** Unplugs: stops socat and waits until both links are gone. */
  close(): Promise<void>
}

export async function startPtyPair(gateway: string, device: string, timeoutMs = 5000): Promise<PtyPair> {
  // A link left by a socat that was killed hard would point at a pts another process may now own.
  rmSync(gateway, { force: true })
  rmSync(device, { force: true })
  const proc = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${gateway}`, `pty,raw,echo=0,link=${device}`], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`socat did not start within ${timeoutMs} ms: ${log}`)), timeoutMs)
    const fail = (err: Error) => {
      clearTimeout(timer)
      proc.kill('SIGKILL')
      reject(err)
    }
    const early = (code: number | null) => fail(new Error(`socat exited ${code}: ${log}`))
    proc.once('error', fail)
    proc.once('exit', early)
    // socat -d -d says this once both ends are open and linked.
    proc.stderr.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-4000)
      if (log.includes('starting data transfer loop') && existsSync(gateway) && existsSync(device)) {
        clearTimeout(timer)
        proc.off('exit', early)
        resolve()
      }
    })
  })
  proc.stderr.resume()
  return {
    gateway,
    device,
    process: proc,
    async close() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
      await exited
      // socat removes its links on SIGTERM; make sure, so a replug can link the same paths.
      rmSync(gateway, { force: true })
      rmSync(device, { force: true })
    },
  }
}
