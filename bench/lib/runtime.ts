/**
 * The gateway's production runtime settings, read from deploy/gridwatch-gateway.service so the
 * benchmarks and chaos runs use exactly what a street office runs.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const unit = readFileSync(fileURLToPath(new URL('../../deploy/gridwatch-gateway.service', import.meta.url)), 'utf8')

/** Node flags from ExecStart (between the node binary and the script). */
export function gatewayNodeFlags(): string[] {
  const exec = /^ExecStart=\S+\s+(.*)$/m.exec(unit)?.[1] ?? ''
  return exec.split(/\s+/).filter((a) => a.startsWith('--'))
}

/** Environment= lines, except the config path (benchmarks bring their own). */
export function gatewayEnv(): Record<string, string> {
  const env: Record<string, string> = {}
  for (const m of unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)) {
    if (m[1] !== 'GRIDWATCH_GATEWAY_CONFIG') env[m[1]] = m[2]!
  }
  return env
}
