/**
 * Production runtime settings, read from the systemd units in deploy/ so the benchmarks and
 * chaos runs use exactly what a street office runs.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const unitOf = (name: string) => readFileSync(fileURLToPath(new URL(`../../deploy/${name}.service`, import.meta.url)), 'utf8')
const gatewayUnit = unitOf('gridwatch-gateway')
const brokerUnit = unitOf('gridwatch-broker')

/** Node flags from ExecStart (between the node binary and the script). */
function nodeFlags(unit: string): string[] {
  const exec = /^ExecStart=\S+\s+(.*)$/m.exec(unit)?.[1] ?? ''
  const args = exec.split(/\s+/)
  return args.slice(0, args.findIndex((a) => !a.startsWith('--'))).filter((a) => a.startsWith('--'))
}

/** Environment= lines, except config paths (benchmarks bring their own). */
function environment(unit: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const m of unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)) {
    if (!m[1].endsWith('_CONFIG')) env[m[1]] = m[2]!
  }
  return env
}

export const gatewayNodeFlags = () => nodeFlags(gatewayUnit)
export const gatewayEnv = () => environment(gatewayUnit)
export const brokerNodeFlags = () => nodeFlags(brokerUnit)
export const brokerEnv = () => environment(brokerUnit)

/** BENCH_GATEWAY_FLAGS: node flags a benchmark adds to its gateway (e.g. `--cpu-prof --cpu-prof-dir=DIR`). */
export const benchGatewayFlags = () => process.env.BENCH_GATEWAY_FLAGS?.split(' ').filter(Boolean) ?? []

/** BENCH_BROKER_FLAGS: the same for a benchmark's standalone broker. */
export const benchBrokerFlags = () => process.env.BENCH_BROKER_FLAGS?.split(' ').filter(Boolean) ?? []
