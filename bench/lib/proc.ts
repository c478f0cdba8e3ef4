/**
 * Child processes for benchmarks and chaos runs, with what /proc says about them: peak RSS and
 * CPU time. Linux only, like the gateways we ship on.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

export interface Child {
  proc: ChildProcess
  exited: Promise<number | null>
  output(): string
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

export function startProcess(command: string, args: string[], options: SpawnOptions & { name?: string } = {}): Child {
  const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options })
  let out = ''
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-200_000)
  }
  proc.stdout?.on('data', keep)
  proc.stderr?.on('data', keep)
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  return {
    proc,
    exited,
    output: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
      return exited
    },
  }
}

/** Peak resident set (VmHWM) in MB. */
export function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : NaN
}

/** CPU seconds (user + system) the process has used so far. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  // After "pid (comm) ": state is field 3, utime field 14, stime field 15 (proc(5)).
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return (utime + stime) / 100
}

/** Runs a process to completion and parses the last JSON line it printed. */
export async function runForJson<T>(command: string, args: string[], options: SpawnOptions = {}): Promise<T> {
  const child = startProcess(command, args, options)
  const code = await child.exited
  const lines = child.output().trim().split('\n')
  const last = lines[lines.length - 1] ?? ''
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${code}: ${child.output().slice(-2000)}`)
  return JSON.parse(last) as T
}

/** Pids of this process's children whose command name is `name` (for a child another helper spawned). */
export function childPids(name: string, parent = process.pid): number[] {
  const out: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (comm === name && ppid === parent) out.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return out
}
