/**
 * Suites that need a system binary (influxd, socat, mosquitto) declare it here. Where it is
 * missing they are skipped with a notice that says what to install, except under CI=true,
 * where a missing binary fails the run: CI must never pass by skipping.
 */
import { execFileSync } from 'node:child_process'
import { describe } from 'vitest'

export function hasBinary(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** `describe` when every binary is present; otherwise a loud skip, or a failure under CI. */
export function describeWith(binaries: { name: string; debianPackage: string }[]): typeof describe {
  const missing = binaries.filter((b) => !hasBinary(b.name))
  if (missing.length === 0) return describe
  const what = missing.map((b) => `${b.name} (apt-get install -y ${b.debianPackage})`).join(', ')
  if (process.env.CI === 'true') throw new Error(`CI=true and required binaries are missing: ${what}`)
  console.warn(`\n${'!'.repeat(78)}\n!! SKIPPING tests that need ${what}\n!! Install them to run these suites; under CI=true this is a failure.\n${'!'.repeat(78)}\n`)
  return describe.skip as typeof describe
}

export const INFLUXD = { name: 'influxd', debianPackage: 'influxdb' }
export const MOSQUITTO_CLIENTS = { name: 'mosquitto_pub', debianPackage: 'mosquitto-clients' }
export const MOSQUITTO = { name: 'mosquitto', debianPackage: 'mosquitto' }
