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

/** Whether a command (argv, no shell) runs and exits 0. */
function succeeds(argv: readonly string[]): boolean {
  try {
    execFileSync(argv[0], argv.slice(1), { stdio: 'ignore', timeout: 10_000 })
    return true
  } catch {
    return false
  }
}

/**
 * `describe` when every binary is present; otherwise a loud skip, or a failure under CI. A `probe`
 * (argv) stands in for the PATH lookup of `name` when being on PATH is not enough.
 */
export function describeWith(binaries: { name: string; debianPackage: string; probe?: readonly string[] }[]): typeof describe {
  const missing = binaries.filter((b) => !(b.probe ? succeeds(b.probe) : hasBinary(b.name)))
  if (missing.length === 0) return describe
  const what = missing.map((b) => `${b.name} (apt-get install -y ${b.debianPackage})`).join(', ')
  if (process.env.CI === 'true') throw new Error(`CI=true and required binaries are missing: ${what}`)
  console.warn(`\n${'!'.repeat(78)}\n!! SKIPPING tests that need ${what}\n!! Install them to run these suites; under CI=true this is a failure.\n${'!'.repeat(78)}\n`)
  return describe.skip as typeof describe
}

export const INFLUXD = { name: 'influxd', debianPackage: 'influxdb' }
export const MOSQUITTO_CLIENTS = { name: 'mosquitto_pub', debianPackage: 'mosquitto-clients' }
export const MOSQUITTO = { name: 'mosquitto', debianPackage: 'mosquitto' }
/** The system Python with pymodbus (3.0 in Debian bookworm), a third-party Modbus RTU slave. */
export const PYMODBUS = { name: '/usr/bin/python3 with pymodbus', debianPackage: 'python3-pymodbus', probe: ['/usr/bin/python3', '-c', 'import pymodbus'] }
