import { describe, expect, it } from 'vitest'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '../../common/config-file.ts'
import { resolveGatewayConfig, DEMO_CONFIG_PATH, loadGatewayConfig } from '../../gateway/config/load.ts'
import { loadCloudConfig } from '../../cloud-api/config.ts'
import { hashToken } from '../../common/secrets.ts'
import { removeTestDir } from '../helpers/temp.ts'

const minimal = {
  gateway: { id: 'gw-1', dataDir: '/tmp/x' },
  office: { id: 'o1', name: 'Office' },
  uplink: { url: 'http://center:8080' },
}

function problemsOf(fn: () => unknown) {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  throw new Error('expected a ConfigError')
}

describe('gateway config', () => {
  it('loads the demo office', () => {
    const c = loadGatewayConfig(DEMO_CONFIG_PATH, { env: {} })
    expect(c.devices.map((d) => d.id)).toEqual(['gas-001', 'gas-002', 'phone-001', 'cam-001', 'cam-002', 'wand-01'])
    expect(c.thresholds.gas).toMatchObject({ unit: '%LEL', low: 25, high: 50, hysteresis: 5, debounceSamples: 1, staleMinutes: 10 })
    expect(c.routes.map((r) => r.id)).toEqual(['r-laojie-round'])
  })

  it('fills defaults for what a small office leaves out', () => {
    const c = resolveGatewayConfig(minimal, 'test', { env: {} })
    expect(c.uplink.batchMax).toBe(500)
    expect(c.broker.allowAnonymous).toBe(false)
  })

  it('names the path and the problem', () => {
    expect(problemsOf(() => resolveGatewayConfig({ ...minimal, uplink: { url: 'ftp://x' } }, 'test', { env: {} }))).toEqual([
      { path: '/uplink/url', message: expect.stringContaining('pattern') },
    ])
  })

  it('refuses a device password in clear, and a device without one', () => {
    const devices = [
      { id: 'a', type: 'gas-detector', secret: 'hunter2' },
      { id: 'b', type: 'gas-detector' },
    ]
    const problems = problemsOf(() => resolveGatewayConfig({ ...minimal, devices }, 'test', { env: {} }))
    expect(problems.map((p) => p.path)).toEqual(['/devices/0/secret', '/devices/1/secret'])
    expect(problems[0].message).toContain('scrypt hash')
  })

  it('checks references across the file', () => {
    const problems = problemsOf(() =>
      resolveGatewayConfig(
        {
          ...minimal,
          broker: { allowAnonymous: true },
          devices: [{ id: 'a', type: 'gas-detector', enterprise: 'nope' }, { id: 'a', type: 'camera' }],
          checkpoints: [{ id: 'c1', tag: 'AA', name: 'x' }, { id: 'c2', tag: 'aa', name: 'y' }],
          thresholds: { gas: { unit: '%LEL', low: 50, high: 25, hysteresis: 1 } },
        },
        'test',
        { env: {} },
      ),
    )
    expect(problems.map((p) => p.path)).toEqual(['/devices/0/enterprise', '/devices/1/id', '/checkpoints/1/tag', '/thresholds/gas'])
  })

  it('refuses a serial line and a Modbus bus on one port, and a camera pin naming no HTTP camera', () => {
    const problems = problemsOf(() =>
      resolveGatewayConfig(
        {
          ...minimal,
          devices: [
            { id: 'wand-1', type: 'patrol-wand', via: 'serial' },
            { id: 'gas-1', type: 'gas-detector', via: 'modbus' },
          ],
          inputs: {
            serial: [{ id: 'dock', path: '/dev/ttyUSB0', devices: ['wand-1'] }],
            modbus: [{ id: 'rs485', path: '/dev/ttyUSB0', slaves: [{ unit: 1, device: 'gas-1', points: [{ quantity: 'gas', function: 'input', address: 0 }] }] }],
            camera: { port: 0, cameras: [{ id: 'gas-1' }] },
          },
        },
        'test',
        { env: {} },
      ),
    )
    expect(problems.map((p) => p.path)).toEqual(['/inputs/modbus/0/path', '/inputs/camera/cameras/0/id'])
  })

  it('keeps a __proto__ key as data, which the schema then refuses', () => {
    const hostile = JSON.parse('{"__proto__": {"polluted": true}}') as object
    const problems = problemsOf(() => resolveGatewayConfig({ ...minimal, ...hostile }, 'test', { env: {} }))
    expect(problems.some((p) => p.message.includes('__proto__'))).toBe(true)
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined()
  })

  it('takes the uplink token and ports from the environment', () => {
    const c = resolveGatewayConfig(minimal, 'test', { env: { GRIDWATCH_UPLINK_TOKEN: 'tok-aaaaaaaaaaaaaaaa', GRIDWATCH_MQTT_PORT: '1999' } })
    expect(c.uplink.token).toBe('tok-aaaaaaaaaaaaaaaa')
    expect(c.broker.tcp?.port).toBe(1999)
  })
})

describe('cloud config', () => {
  it('STORE=influx INFLUX_URL=... switches the store', () => {
    const c = loadCloudConfig(undefined, { STORE: 'influx', INFLUX_URL: 'http://db:8086' })
    expect(c.store).toEqual({ type: 'influx', url: 'http://db:8086', database: 'gridwatch' })
  })

  it("takes an influx store from the file whole, and lets the environment change only the keys it names", () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloud-config-'))
    try {
      const path = join(dir, 'cloud.yaml')
      const influx = { type: 'influx', url: 'http://influx.internal:8086', database: 'pukou_prod', rawRetention: '30d', longTermRetention: '1825d' }
      writeFileSync(path, JSON.stringify({ store: influx }))
      expect(loadCloudConfig(path, {}).store).toEqual(influx)
      expect(loadCloudConfig(path, { INFLUX_URL: 'https://db:8086' }).store).toEqual({ ...influx, url: 'https://db:8086' })
      expect(loadCloudConfig(path, { STORE: 'influx', INFLUX_DB: 'pukou_test' }).store).toEqual({ ...influx, database: 'pukou_test' })
      // Another kind starts afresh; a variable of the other kind changes nothing.
      expect(loadCloudConfig(path, { STORE: 'sqlite' }).store).toEqual({ type: 'sqlite', path: 'var/cloud/events.db' })
      expect(loadCloudConfig(path, { SQLITE_PATH: '/x.db' }).store).toEqual(influx)
      writeFileSync(path, JSON.stringify({ store: { type: 'sqlite', path: '/srv/events.db' } }))
      expect(loadCloudConfig(path, {}).store).toEqual({ type: 'sqlite', path: '/srv/events.db' })
      expect(loadCloudConfig(path, { SQLITE_PATH: '/x.db' }).store).toEqual({ type: 'sqlite', path: '/x.db' })
      expect(loadCloudConfig(path, { STORE: 'influx' }).store).toEqual({ type: 'influx', url: 'http://127.0.0.1:8086', database: 'gridwatch' })
    } finally {
      removeTestDir(dir)
    }
  })

  it('refuses ids declared twice and references to districts, offices and enterprises the organization lacks', () => {
    const office = (id: string, enterprises: string[] = []) => ({ id, name: id, utcOffsetMinutes: 480, enterprises: enterprises.map((e) => ({ id: e, name: e })), routes: [] })
    const organization = {
      districts: [
        { id: 'd1', name: 'D1', offices: [office('o-a', ['canteen-1']), office('o-b', ['canteen-1'])] },
        { id: 'd2', name: 'D2', offices: [office('o-a')] },
      ],
    }
    const token = hashToken('tok-a-0123456789abcdefghij')
    const problems = problemsOf(() =>
      loadCloudConfig(undefined, {}, {
        organization,
        gateways: [
          { id: 'gw-1', office: 'o-a', tokenHash: token },
          { id: 'gw-1', office: 'o-b', tokenHash: hashToken('tok-b-0123456789abcdefghij') },
          { id: 'gw-2', office: 'o-z', tokenHash: token },
        ],
        users: [
          { name: 'zhang', role: 'center', scope: { district: 'd9' } },
          { name: 'zhang', role: 'center', scope: {} },
          { name: 'li', role: 'inspector', scope: {} },
          { name: 'wang', role: 'supervisor', scope: { offices: ['o-z'] } },
          { name: 'zhao', role: 'inspector', scope: { enterprises: ['nowhere'] }, tokenHashes: [token] },
        ],
      }),
    )
    expect(problems).toEqual([
      { path: '/organization/districts/0/offices/1/enterprises/0/id', message: 'enterprise "canteen-1" is already declared at /organization/districts/0/offices/0/enterprises/0/id' },
      { path: '/organization/districts/1/offices/0/id', message: 'office "o-a" is already declared at /organization/districts/0/offices/0/id' },
      { path: '/gateways/1/id', message: 'gateway "gw-1" is already declared at /gateways/0/id' },
      { path: '/gateways/2/tokenHash', message: 'the same gateway token is already declared at /gateways/0/tokenHash' },
      { path: '/gateways/2/office', message: 'no office "o-z" in /organization' },
      { path: '/users/0/scope/district', message: 'no district "d9" in /organization' },
      { path: '/users/1/name', message: 'user "zhang" is already declared at /users/0/name' },
      { path: '/users/1/scope/district', message: 'center staff need a district' },
      { path: '/users/2/scope/enterprises', message: 'inspectors need at least one enterprise' },
      { path: '/users/3/scope/offices', message: 'no office "o-z" in /organization' },
      { path: '/users/4/scope/enterprises', message: 'no enterprise "nowhere" in /organization' },
      { path: '/users/4/tokenHashes/0', message: 'the same token as the gateway at /gateways/2/tokenHash' },
    ])
    // The demo config and a well-formed one pass.
    expect(() => loadCloudConfig(undefined, {})).not.toThrow()
  })

  it('refuses an unknown STORE', () => {
    expect(() => loadCloudConfig(undefined, { STORE: 'mongo' })).toThrow(ConfigError)
  })
})
