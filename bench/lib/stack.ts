/**
 * The gateway and the cloud API as real processes on their own ports and data, which can be
 * killed and brought back on the same ports and data. Used by the benchmarks and the chaos
 * scenarios (test/chaos).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { stringify } from 'yaml'
import { deepMerge, readConfigFile } from '../../common/config-file.ts'
import { freePort } from '../../common/ports.ts'
import { DEMO_GATEWAY_TOKEN } from '../../devices/demo-credentials.ts'
import { DEMO_CONFIG_PATH } from '../../gateway/config/load.ts'
import { startProcess, type Child } from './proc.ts'
import { benchGatewayFlags, gatewayEnv, gatewayNodeFlags } from './runtime.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))

/** `source` runs the TypeScript through tsx (tests); `dist` runs the production bundles (npm run chaos). */
export type Build = 'source' | 'dist'

/**
 * `heapMb` replaces the unit's V8 memory flags with that old-space cap alone, as the systemd
 * drop-in in docs/inputs/opcua.md does for a large OPC UA office (bench:opcua).
 * BENCH_GATEWAY_FLAGS adds node flags to the gateway bundle (e.g. `--cpu-prof --cpu-prof-dir=DIR`),
 * as BENCH_API_NODE_FLAGS does for the center in bench:ingest.
 */
function nodeArgs(build: Build, deployable: 'gateway' | 'cloud-api', heapMb?: number): string[] {
  if (build === 'dist') {
    const bundle = join(root, 'dist', `${deployable}.mjs`)
    if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run npm run build`)
    if (deployable !== 'gateway') return [bundle]
    const memory = (f: string) => f.startsWith('--max-old-space-size') || f.startsWith('--max-semi-space-size')
    const flags = heapMb === undefined ? gatewayNodeFlags() : [...gatewayNodeFlags().filter((f) => !memory(f)), `--max-old-space-size=${heapMb}`]
    return [...flags, ...benchGatewayFlags(), bundle]
  }
  return ['--import', 'tsx', join(root, deployable, 'main.ts')]
}

export async function waitUntil<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      const v = await probe()
      if (v !== undefined) return v
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function ready(url: string): Promise<true | undefined> {
  return (await fetch(url)).ok ? true : undefined
}

/** A service that can be killed and brought back on the same ports and data. */
abstract class Restartable {
  child: Child | undefined
  protected abstract spawn(): Child
  protected abstract readyUrl(): string

  async start(): Promise<void> {
    this.child = this.spawn()
    const child = this.child
    await waitUntil(
      async () => {
        if (child.proc.exitCode !== null) throw new Error(`exited early: ${child.output().slice(-2000)}`)
        return ready(this.readyUrl())
      },
      60_000,
      this.readyUrl(),
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${child.output().slice(-3000)}`)
    })
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.child?.stop(signal)
    this.child = undefined
  }
}

export class CloudProcess extends Restartable {
  readonly dir = mkdtempSync(join(tmpdir(), 'gridwatch-chaos-cloud-'))
  readonly dbPath = join(this.dir, 'events.db')

  constructor(
    private readonly build: Build,
    readonly port: number,
    private readonly storeEnv: Record<string, string> = {},
  ) {
    super()
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  protected readyUrl(): string {
    return `${this.url}/healthz`
  }

  protected spawn(): Child {
    // The built-in demo config: it knows the demo gateway's token and allows reads.
    return startProcess(process.execPath, nodeArgs(this.build, 'cloud-api'), {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: 'warn', PORT: String(this.port), STORE: 'sqlite', SQLITE_PATH: this.dbPath, CENTER_DB: join(this.dir, 'center.db'), ...this.storeEnv },
    })
  }

  async metric(name: string): Promise<number> {
    const text = await (await fetch(`${this.url}/metrics`)).text()
    let sum = 0
    for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.split(' ').pop())
    return sum
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true })
  }
}

export class GatewayProcess extends Restartable {
  readonly dir = mkdtempSync(join(tmpdir(), 'gridwatch-chaos-gw-'))
  /** With `dist`: the V8 old-space cap instead of the unit's. */
  heapMb: number | undefined
  private readonly configPath = join(this.dir, 'office.yaml')

  constructor(
    private readonly build: Build,
    readonly mqttPort: number,
    readonly httpPort: number,
    cloudUrl: string,
    overrides: Record<string, unknown> = {},
  ) {
    super()
    const config = deepMerge(readConfigFile(DEMO_CONFIG_PATH), {
      gateway: { dataDir: join(this.dir, 'data') },
      broker: { tcp: { host: '127.0.0.1', port: mqttPort } },
      http: { host: '127.0.0.1', port: httpPort },
      uplink: { url: cloudUrl, token: DEMO_GATEWAY_TOKEN },
      // The scenarios count messages end to end: every reading and every scan must travel
      // (report by exception and double-scan suppression have their own tests).
      reduction: { deadband: { gas: 0 } },
      patrol: { doubleScanSeconds: 0 },
      // The quota scenario raises an alarm every hundred messages, far beyond a storm.
      storm: { maxAlerts: 1_000_000 },
      ...overrides,
    })
    writeFileSync(this.configPath, stringify(config))
  }

  protected readyUrl(): string {
    return `http://127.0.0.1:${this.httpPort}/readyz`
  }

  protected spawn(): Child {
    return startProcess(process.execPath, [...nodeArgs(this.build, 'gateway', this.heapMb), '--config', this.configPath], {
      cwd: root,
      env: { ...process.env, ...(this.build === 'dist' ? gatewayEnv() : {}), LOG_LEVEL: 'warn', GRIDWATCH_DRAIN_MS: '0' },
    })
  }

  async health(): Promise<{ outbox: { pending: Record<string, number> }; uplink: { up: boolean } }> {
    return (await (await fetch(`http://127.0.0.1:${this.httpPort}/healthz`)).json()) as never
  }

  async pending(): Promise<number> {
    const h = await this.health()
    return Object.values(h.outbox.pending).reduce((a, b) => a + b, 0)
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true })
  }
}


export async function ports(n: number): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push(await freePort())
  return out
}
