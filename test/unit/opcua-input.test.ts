/**
 * The pure parts of the OPC UA input: the config's schema and cross-checks, the converter from a
 * monitored item's DataValue to readings and sensor faults, and the liveness watchdog. Then the
 * server link's setup and teardown against a scripted node-opcua (client, session, subscription,
 * monitored item group), for what a real server cannot be made to do on cue.
 */
import type { EventEmitter } from 'node:events'
import type * as NodeOpcua from 'node-opcua'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ConfigError } from '../../common/config-file.ts'
import { createLogger } from '../../common/logger.ts'
import { resolveGatewayConfig } from '../../gateway/config/load.ts'
import type { InputMetrics } from '../../gateway/inputs/input.ts'
import { checkNodeId, resolveOpcuaServer, type OpcuaServerConfig } from '../../gateway/inputs/opcua/config.ts'
import { LIVENESS_MARGIN_MS, LivenessWatchdog, silenceLimitMs } from '../../gateway/inputs/opcua/liveness.ts'
import { NotificationConverter } from '../../gateway/inputs/opcua/notification.ts'
import { ServerLink } from '../../gateway/inputs/opcua/server-link.ts'
import type { Pipeline } from '../../gateway/pipeline.ts'
import { nextEvent, waitFor } from '../helpers/wait.ts'

/** What the scripted node-opcua created, as it happens. */
type Created = { kind: 'client' } | { kind: 'subscription'; subscription: FakeSubscription } | { kind: 'group'; group: EventEmitter }
interface FakeSubscription extends EventEmitter {
  isActive: boolean
  /** The server ended it: node-opcua's ClientSubscription emits 'terminated'. */
  end(): void
}

const fake = vi.hoisted(() => ({
  listeners: new Set<(created: Created) => void>(),
  /** Groups created from now on neither initialize nor fail, as on a subscription already gone. */
  groupsHang: false,
}))

vi.mock('node-opcua', async (importOriginal) => {
  const real = await importOriginal<typeof NodeOpcua>()
  const { EventEmitter: Emitter } = await import('node:events')
  const tell = (created: Created) => fake.listeners.forEach((l) => l(created))
  class Subscription extends Emitter implements FakeSubscription {
    subscriptionId = 1
    isActive = true
    publishingInterval = 10
    maxKeepAliveCount = 2
    end() {
      this.isActive = false
      this.emit('terminated')
    }
  }
  class Session extends Emitter {
    async createSubscription2() {
      const subscription = new Subscription()
      tell({ kind: 'subscription', subscription })
      return subscription
    }
    async close() {}
  }
  class Client extends Emitter {
    async connect() {}
    async createSession() {
      return new Session()
    }
    async disconnect() {}
  }
  return {
    ...real,
    OPCUAClient: {
      create: () => {
        tell({ kind: 'client' })
        return new Client()
      },
    },
    ClientMonitoredItemGroup: {
      create: (_subscription: unknown, items: unknown[]) => {
        const group = Object.assign(new Emitter(), { monitoredItems: items.map(() => ({ statusCode: real.StatusCodes.Good })) })
        tell({ kind: 'group', group })
        if (!fake.groupsHang) setImmediate(() => group.emit('initialized'))
        return group
      },
    },
  }
})

function nextCreated<K extends Created['kind']>(kind: K, timeoutMs = 5000): Promise<Extract<Created, { kind: K }>> {
  return nextEvent<Created>(
    (l) => {
      fake.listeners.add(l)
      return () => fake.listeners.delete(l)
    },
    (c) => c.kind === kind,
    timeoutMs,
  ) as Promise<Extract<Created, { kind: K }>>
}

/** Rejects if `work` has not settled within `ms`. */
function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)))]).finally(() =>
    clearTimeout(timer),
  )
}

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
    // Two words without an Int64/UInt64 DataType are an array, not a number.
    expect(decode(c.convert(0, { value: [0, 5], status: GOOD, statusName: 'Good', ts: undefined }))).toBe('not_numeric')
    expect(decode(c.convert(0, { value: true, status: GOOD, statusName: 'Good', ts: undefined }))).toEqual([
      { device: 'pg-1', kind: 'reading', body: { quantity: 'gas', unit: '%LEL', value: 1 } },
    ])
  })

  it('reads Int64 and UInt64, which node-opcua gives as [high, low] words', () => {
    const c = new NotificationConverter(items, (q) => units[q])
    const value = (v: unknown, dataType: 'Int64' | 'UInt64') => {
      const out = c.convert(0, { value: v, status: GOOD, statusName: 'Good', ts: undefined, dataType })
      return out.ok ? (JSON.parse(out.messages.at(-1)!.raw.toString()) as { value: number }).value : out.reason
    }
    expect(value([0, 42], 'Int64')).toBe(42)
    expect(value([0xffffffff, 0xffffffff], 'Int64')).toBe(-1)
    expect(value([0xffffffff, 0xfffffffe], 'Int64')).toBe(-2)
    expect(value([0x80000000, 0], 'Int64')).toBe(-(2 ** 63))
    expect(value([1, 0], 'Int64')).toBe(2 ** 32)
    expect(value([0xffffffff, 0xffffffff], 'UInt64')).toBe(2 ** 64 - 1)
    expect(value([0, 7], 'UInt64')).toBe(7)
    expect(value([0, 2 ** 32], 'UInt64')).toBe('not_numeric')
  })

  it('a Good status clears the fault even when its value is not a number', () => {
    const c = new NotificationConverter(items, (q) => units[q])
    c.convert(0, { value: 1, status: GOOD, statusName: 'Good', ts: undefined })
    c.convert(0, { value: 1, status: BAD_SENSOR_FAILURE, statusName: 'BadSensorFailure', ts: undefined })
    const out = c.convert(0, { value: 'n/a', status: GOOD, statusName: 'Good', ts: undefined })
    expect(out.ok).toBe(false)
    expect(out.messages.map((m) => JSON.parse(m.raw.toString()) as unknown)).toEqual([{ state: 'online' }])
    // The fault is gone: the same Bad status again is a new fault, a Good value is just a reading.
    expect(decode(c.convert(0, { value: 2, status: GOOD, statusName: 'Good', ts: undefined }))).toEqual([
      { device: 'pg-1', kind: 'reading', body: { quantity: 'gas', unit: '%LEL', value: 2 } },
    ])
    expect(decode(c.convert(0, { value: 1, status: BAD_SENSOR_FAILURE, statusName: 'BadSensorFailure', ts: undefined }))).toEqual([
      { device: 'pg-1', kind: 'status', body: { state: 'fault', reason: 'BadSensorFailure' } },
    ])
  })
})

describe('opcua liveness watchdog', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('allows twice the keep-alive period of the revised subscription, plus a margin', () => {
    expect(silenceLimitMs(1000, 10)).toBe(20_000 + LIVENESS_MARGIN_MS)
    expect(silenceLimitMs(100, 10)).toBe(2000 + LIVENESS_MARGIN_MS)
  })

  it('fires once after the limit of silence, never while fed, never once disarmed', () => {
    vi.useFakeTimers()
    const silent = vi.fn()
    const w = new LivenessWatchdog(silent)
    w.arm(1000)
    for (let i = 0; i < 5; i++) {
      vi.advanceTimersByTime(900)
      w.feed()
    }
    expect(silent).not.toHaveBeenCalled()
    vi.advanceTimersByTime(1000)
    expect(silent).toHaveBeenCalledOnce()
    expect(silent).toHaveBeenCalledWith(1000)
    expect(w.armed).toBe(false)
    vi.advanceTimersByTime(5000)
    expect(silent).toHaveBeenCalledOnce()
    w.arm(1000)
    w.disarm()
    vi.advanceTimersByTime(5000)
    expect(silent).toHaveBeenCalledOnce()
  })
})

describe('opcua server link against a scripted node-opcua', () => {
  const lines: string[] = []
  const metrics = { frame: vi.fn(), rejected: vi.fn(), reconnect: vi.fn(), connected: vi.fn() }
  let link: ServerLink | undefined

  function newLink(): ServerLink {
    const settings = resolveOpcuaServer(server([{ nodeId: 'ns=2;s=gas', device: 'pg-1', quantity: 'gas' }], { reconnect: { initialDelayMs: 10, maxDelayMs: 100 } }))
    link = new ServerLink(settings, {
      input: 'opcua',
      pipeline: { accept: vi.fn() } as unknown as Pipeline,
      logger: createLogger({ service: 'test', level: 'debug', destination: { write: (s: string) => void lines.push(s) } }),
      metrics: metrics as unknown as InputMetrics,
      certificateManager: {} as NodeOpcua.OPCUACertificateManager,
      applicationUri: 'urn:test',
      unitOf: () => undefined,
    })
    return link
  }

  afterEach(async () => {
    fake.groupsHang = false
    await link?.stop()
    link = undefined
    lines.length = 0
  })

  it('a subscription ended before its monitored items were created: the setup fails and starts over', async () => {
    // node-opcua 2.182.2 then emits neither 'initialized' nor 'err' on the group (its create()
    // returns on the terminated subscription): a wait on those alone never settled.
    fake.groupsHang = true
    const subscription = nextCreated('subscription')
    const group = nextCreated('group')
    const l = newLink()
    l.start()
    const first = (await subscription).subscription
    await group
    fake.groupsHang = false
    const again = nextCreated('group')
    first.end()
    await again
    await waitFor(() => l.up || undefined, { timeoutMs: 5000, what: 'the link up on the second setup' })
    expect(lines.some((line) => line.includes('"code":"GW_OPCUA_CONNECT_FAILED"') && line.includes('ended before its monitored items were created'))).toBe(true)
  })

  it('stop() returns while the monitored items are still being created', async () => {
    fake.groupsHang = true
    const group = nextCreated('group')
    const l = newLink()
    l.start()
    await group
    await within(l.stop(), 2000, 'stop()')
    expect(l.up).toBe(false)
  })

  it('a subscription silent for longer than its keep-alive allows is set up again', async () => {
    const l = newLink()
    const subscription = nextCreated('subscription')
    l.start()
    const first = (await subscription).subscription
    await waitFor(() => l.up || undefined, { timeoutMs: 5000, what: 'the link up' })
    // Every Publish response feeds the watchdog (its timing is the pure test above).
    const feed = vi.spyOn(LivenessWatchdog.prototype, 'feed')
    first.emit('keepalive')
    first.emit('received_notifications')
    expect(feed).toHaveBeenCalledTimes(2)
    feed.mockRestore()
    const second = nextCreated('subscription', silenceLimitMs(10, 2) + 5000)
    // Then silence (2 × 2 × 10 ms + margin): the watchdog ends the link and sets it up again.
    await second
    expect(lines.some((line) => line.includes('"code":"GW_OPCUA_LINK_SILENT"') && line.includes('no keep-alive or notification'))).toBe(true)
    expect(metrics.reconnect).toHaveBeenCalled()
    await waitFor(() => l.up || undefined, { timeoutMs: 5000, what: 'the link up again' })
  })
})
