/** The demo office config, re-aimed at temporary directories and free ports, for tests. */
import { DEMO_CONFIG_PATH, loadGatewayConfig } from '../../gateway/config/load.ts'
import type { GatewayConfig } from '../../gateway/config/schema.ts'
import { testTempDir } from './temp.ts'

export function testOfficeConfig(overrides: Record<string, unknown> = {}): GatewayConfig {
  const dataDir = testTempDir('gridwatch-gw-')
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

/**
 * A Modbus RTU bus for tests over a pty pair. The timeout is generous: a slave answers at once
 * (pymodbus in a few ms), but a test process on a loaded CI machine can stall its event loop long
 * enough for a short timeout to fire before the answer is read.
 */
export function testModbusBus(id: string, path: string, slaves: unknown[]): Record<string, unknown> {
  return { id, path, baudRate: 19200, timeoutMs: 400, offlineAfter: 3, reconnectMinMs: 50, reconnectMaxMs: 200, slaves }
}
