/** The standalone broker as a real child process (`npm run broker`), for crash tests and benches. */
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

export interface BrokerProcess {
  child: ChildProcess
  ports: Record<string, number>
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<void>
  stop(): Promise<void>
}

export function writeBrokerConfig(dir: string, config: object): string {
  const path = join(dir, 'broker.json')
  writeFileSync(path, JSON.stringify(config, null, 2))
  return path
}

/**
 * Starts the broker from source (tsx) or from the bundle (`npm run build`, dist/broker.mjs, as
 * benchmarks run it) and resolves with its ports once it logs BROKER_READY.
 */
export function startBrokerProcess(
  configPath: string,
  options: { build?: 'source' | 'dist'; timeoutMs?: number; nodeFlags?: string[]; env?: Record<string, string> } = {},
): Promise<BrokerProcess> {
  const timeoutMs = options.timeoutMs ?? 20_000
  const entry = options.build === 'dist' ? ['dist/broker.mjs'] : ['--import', 'tsx', 'broker/main.ts']
  const child = spawn(process.execPath, [...(options.nodeFlags ?? []), ...entry, '--config', configPath], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...options.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' },
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error('broker did not report BROKER_READY'))
    }, timeoutMs)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`broker exited with ${code} before it was ready`))
    })
    const lines = createInterface({ input: child.stdout })
    lines.on('line', (line) => {
      let entry: { code?: string; ports?: Record<string, number>; http?: number }
      try {
        entry = JSON.parse(line) as typeof entry
      } catch {
        return
      }
      if (entry.code !== 'BROKER_READY' || !entry.ports) return
      clearTimeout(timer)
      resolve({
        child,
        ports: { ...entry.ports, ...(entry.http ? { http: entry.http } : {}) },
        async kill() {
          child.kill('SIGKILL')
          await exited
        },
        async stop() {
          child.kill('SIGTERM')
          await exited
        },
      })
    })
  })
}
