/**
 * The pure parts of the OPC UA input: the config's schema and cross-checks, and the converter
 * from a monitored item's DataValue to readings and sensor faults.
 */
import { describe, expect, it } from 'vitest'
import { ConfigError } from '../../common/config-file.ts'
import { resolveGatewayConfig } from '../../gateway/config/load.ts'
import { checkNodeId, resolveOpcuaServer, type OpcuaServerConfig } from '../../gateway/inputs/opcua/config.ts'
import { NotificationConverter } from '../../gateway/inputs/opcua/notification.ts'

const GOOD = 0
const BAD_SENSOR_FAILURE = 0x808c0000
const UNCERTAIN_LAST_USABLE = 0x40900000

function office(opcua: unknown[], devices: unknown[] = [{ id: 'pg-1', type: 'gas-detector', via: 'opcua' }]) {
  return resolveGatewayConfig(
    { gateway: { id: 'gw-1', dataDir: '/tmp/x' }, office: { id: 'o1', name: 'Office' }, uplink: { url: 'http://center:8080' }, devices, inputs: { opcua } },
    'test',
    { env: {} },
  )
}

const server = (items: unknown[], extra: object = {}) => ({ name: 'plant', endpointUrl: 'opc.tcp://plant:4840', items, ...extra }) as OpcuaServerConfig

describe('opcua config', () => {
  it('names the path of a schema problem', () => {
    let problems: { path: string }[] = []
    try {
      office([server([{ nodeId: 'ns=2;s=x', device: 'pg-1', quantity: 'gas', deadband: { type: 'relative', value: 1 } }], { endpointUrl: 'http://plant' })])
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      problems = err.problems
    }
    expect(problems.map((p) => p.path)).toEqual(expect.arrayContaining(['/inputs/opcua/0/endpointUrl', '/inputs/opcua/0/items/0/deadband/type']))
  })

  it('checks devices, NodeIds and duplicates against the office, when the config loads', () => {
    let problems: unknown[] = []
    try {
      office(
      [
        server([
          { nodeId: 'ns=2;s=a', device: 'pg-1', quantity: 'gas' },
          { nodeId: 'ns=2;i=12x', device: 'pg-1', quantity: 'temperature' },
          { nodeId: 'ns=2;s=b', device: 'pg-1', quantity: 'gas' },
          { nodeId: 'ns=2;s=c', device: 'nobody', quantity: 'gas' },
          { nodeId: 'ns=2;s=d', device: 'mq-1', quantity: 'gas', deadband: { type: 'percent', value: 150 } },
        ]),
      ],
      [
        { id: 'pg-1', type: 'gas-detector', via: 'opcua' },
        { id: 'mq-1', type: 'gas-detector', via: 'serial' },
      ],
      )
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      problems = err.problems
    }
    expect(problems).toEqual([
      { path: '/inputs/opcua/0/items/1/nodeId', message: 'a numeric identifier (i=) is an unsigned 32-bit integer' },
      { path: '/inputs/opcua/0/items/2/quantity', message: 'pg-1 gas is already read from item 0' },
      { path: '/inputs/opcua/0/items/3/device', message: 'no device "nobody" in /devices' },
      { path: '/inputs/opcua/0/items/4/device', message: 'device "mq-1" is not via: opcua' },
      { path: '/inputs/opcua/0/items/4/deadband/value', message: 'a percent deadband is at most 100' },
    ])
  })

  it('fills the defaults, items inheriting the server\'s monitoring settings', () => {
    const s = resolveOpcuaServer(
      server([{ nodeId: 'ns=2;s=a', device: 'pg-1', quantity: 'gas', queueSize: 5 }], { security: { mode: 'SignAndEncrypt' }, samplingIntervalMs: 250, deadband: { type: 'absolute', value: 0.5 } }),
    )
    expect(s).toMatchObject({ securityMode: 'SignAndEncrypt', securityPolicy: 'Basic256Sha256', publishingIntervalMs: 1000, sessionTimeoutMs: 60_000 })
    expect(s.items[0]).toEqual({ nodeId: 'ns=2;s=a', device: 'pg-1', quantity: 'gas', unit: undefined, scale: 1, samplingIntervalMs: 250, queueSize: 5, deadband: { type: 'absolute', value: 0.5 } })
  })

  it.each([
    ['ns=2;s=Plant.gas-01', undefined],
    ['i=2258', undefined],
    ['ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a', undefined],
    ['ns=1;b=M/RbKBsRVkePCePcx24oRA==', undefined],
    ['ns=70000;i=1', 'namespace index above 65535'],
    ['ns=2;g=not-a-guid', 'a GUID identifier (g=) looks like 09087e75-8e5e-499b-954f-f2a9603db28a'],
    ['Plant.gas-01', 'not a NodeId (ns=<index>;<i|s|g|b>=<identifier>)'],
  ])('NodeId %s', (text, problem) => {
    expect(checkNodeId(text)).toBe(problem)
  })
})

describe('opcua notification converter', () => {
  const items = resolveOpcuaServer(
    server([
      { nodeId: 'ns=2;s=gas', device: 'pg-1', quantity: 'gas' },
      { nodeId: 'ns=2;s=p', device: 'pg-1', quantity: 'pressure', unit: 'MPa', scale: 0.001 },
    ]),
  ).items
  const units: Record<string, string> = { gas: '%LEL' }
  const decode = (out: ReturnType<NotificationConverter['convert']>) =>
    out.ok ? out.messages.map((m) => ({ device: m.deviceId, kind: m.kind, body: JSON.parse(m.raw.toString()) as unknown })) : out.reason

  it('reports a device online with its first Good value, then only readings', () => {
    const c = new NotificationConverter(items, (q) => units[q])
    expect(decode(c.convert(0, { value: 3.5, status: GOOD, statusName: 'Good', ts: 1_700_000_000_123.7 }))).toEqual([
      { device: 'pg-1', kind: 'status', body: { state: 'online', ts: 1_700_000_000_123 } },
      { device: 'pg-1', kind: 'reading', body: { quantity: 'gas', unit: '%LEL', value: 3.5, ts: 1_700_000_000_123 } },
    ])
    expect(decode(c.convert(1, { value: 250, status: GOOD, statusName: 'Good', ts: undefined }))).toEqual([
      { device: 'pg-1', kind: 'reading', body: { quantity: 'pressure', unit: 'MPa', value: 0.25 } },
    ])
  })

  it('a Bad or Uncertain status is one fault, without a reading; online only once every item is Good', () => {
    const c = new NotificationConverter(items, (q) => units[q])
    c.convert(0, { value: 1, status: GOOD, statusName: 'Good', ts: undefined })
    expect(decode(c.convert(0, { value: 1, status: BAD_SENSOR_FAILURE, statusName: 'BadSensorFailure', ts: undefined }))).toEqual([
      { device: 'pg-1', kind: 'status', body: { state: 'fault', reason: 'BadSensorFailure' } },
    ])
    // The same status again (a queue of 2, a republish) is not a second fault.
    expect(decode(c.convert(0, { value: 1, status: BAD_SENSOR_FAILURE, statusName: 'BadSensorFailure', ts: undefined }))).toEqual([])
    expect(decode(c.convert(1, { value: 9, status: UNCERTAIN_LAST_USABLE, statusName: 'UncertainLastUsableValue', ts: undefined }))).toEqual([
      { device: 'pg-1', kind: 'status', body: { state: 'fault', reason: 'UncertainLastUsableValue' } },
    ])
    expect(decode(c.convert(0, { value: 2, status: GOOD, statusName: 'Good', ts: undefined }))).toEqual([
      { device: 'pg-1', kind: 'reading', body: { quantity: 'gas', unit: '%LEL', value: 2 } },
    ])
    expect(decode(c.convert(1, { value: 300, status: GOOD, statusName: 'Good', ts: undefined }))).toEqual([
      { device: 'pg-1', kind: 'status', body: { state: 'online' } },
      { device: 'pg-1', kind: 'reading', body: { quantity: 'pressure', unit: 'MPa', value: 0.3 } },
    ])
  })

  it('refuses what is not a number', () => {
    const c = new NotificationConverter(items, (q) => units[q])
    expect(decode(c.convert(0, { value: 'high', status: GOOD, statusName: 'Good', ts: undefined }))).toBe('not_numeric')
    expect(decode(c.convert(0, { value: Number.NaN, status: GOOD, statusName: 'Good', ts: undefined }))).toBe('not_numeric')
    expect(decode(c.convert(0, { value: true, status: GOOD, statusName: 'Good', ts: undefined }))).toEqual([
      { device: 'pg-1', kind: 'status', body: { state: 'online' } },
      { device: 'pg-1', kind: 'reading', body: { quantity: 'gas', unit: '%LEL', value: 1 } },
    ])
  })
})
