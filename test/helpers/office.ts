/** The demo office config, re-aimed at temporary directories and free ports, for tests. */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEMO_CONFIG_PATH, loadGatewayConfig } from '../../gateway/config/load.ts'
import type { GatewayConfig } from '../../gateway/config/schema.ts'

const dataDirs: string[] = []

/**
 * Removes the data directories made so far (test/setup.ts calls it after each test file; the
 * property-based rule tests alone made thousands per run, and they piled up in /tmp).
 */
export function removeTestDataDirs(): void {
  for (const dir of dataDirs.splice(0)) rmSync(dir, { recursive: true, force: true })
}

export function testOfficeConfig(overrides: Record<string, unknown> = {}): GatewayConfig {
  const dataDir = mkdtempSync(join(tmpdir(), 'gridwatch-gw-'))
  dataDirs.push(dataDir)
  return loadGatewayConfig(DEMO_CONFIG_PATH, {
    env: {},
    overrides: {
      gateway: { dataDir },
      broker: { tcp: { host: '127.0.0.1', port: 0 } },
      http: { host: '127.0.0.1', port: 0 },
      uplink: { url: 'http://127.0.0.1:9', lingerMs: 20, token: 'test-token-xxxxxxxxxxxxxxxx' },
      // Tests count what reaches the outbox: every reading goes (report by exception has its own tests).
      reduction: { deadband: { gas: 0 } },
      ...overrides,
    },
  })
}
