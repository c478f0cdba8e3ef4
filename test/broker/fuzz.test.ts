/**
 * Fuzzing the broker process over TCP: property-based packet sequences (fast-check, encoded with
 * mqtt-packet) and raw byte mutations of valid packets. After every case the broker must still be
 * running, a control client must still get a round trip through it, and its memory must stay
 * bounded across the run.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import type { ChildProcess } from 'node:child_process'
import { connect as tcpConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import mqtt, { type MqttClient } from 'mqtt'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { brokerDefaults } from '../../broker/config.ts'
import { freePort } from '../../common/ports.ts'
import { hashPassword } from '../../common/secrets.ts'
import { startBrokerProcess, writeBrokerConfig, type BrokerProcess } from '../../bench/lib/broker-process.ts'
import { GATEWAY_ID, passwordOf } from '../helpers/broker.ts'
import { removeTestDir } from '../helpers/temp.ts'

/**
 * The broker's live heap in MB, from a heap snapshot it writes on SIGUSR2 (`--heapsnapshot-signal`).
 * V8 collects garbage before a snapshot, so unlike RSS this counts only what is still reachable:
 * a leak shows, and a lazy collector on a busy machine does not.
 */
async function liveHeapMb(child: ChildProcess, dir: string): Promise<number> {
  const before = new Set(readdirSync(dir))
  child.kill('SIGUSR2')
  const deadline = Date.now() + 30_000
  for (;;) {
    const file = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f))
    if (file) {
      try {
        // The file is written in pieces; it parses once it is complete.
        const snapshot = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { snapshot: { meta: { node_fields: string[] } }; nodes: number[] }
        const fields = snapshot.snapshot.meta.node_fields
        const selfSize = fields.indexOf('self_size')
        let bytes = 0
        for (let i = selfSize; i < snapshot.nodes.length; i += fields.length) bytes += snapshot.nodes[i]
        rmSync(join(dir, file))
        return bytes / 1024 / 1024
      } catch {
        // not complete yet
      }
    }
    if (Date.now() > deadline) throw new Error('the broker wrote no heap snapshot within 30 s')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/**
 * Sends `bytes` (in the given chunk sizes) on a fresh connection, half-closes, and waits for the
 * close. With `prefix` (a login), that goes first and the rest only after the broker's answer, so
 * the fuzzed packets meet a session rather than a half-open connection.
 */
function feed(port: number, bytes: Buffer, chunks: number[] = [], prefix?: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1')
    socket.on('error', () => {})
    const timer = setTimeout(() => socket.destroy(), 3000)
    socket.once('close', () => {
      clearTimeout(timer)
      resolve()
    })
    const send = () => {
      let at = 0
      for (const size of chunks) {
        if (at >= bytes.length) break
        socket.write(bytes.subarray(at, at + size))
        at += size
      }
      if (at < bytes.length) socket.write(bytes.subarray(at))
      socket.end()
    }
    socket.once('connect', () => {
      if (!prefix) return send()
      socket.write(prefix)
      socket.once('data', send)
    })
    socket.on('data', () => {})
  })
}

const encode = (packets: Packet[]): Buffer =>
  Buffer.concat(
    packets.flatMap((p) => {
      try {
        return [mqttPacket.generate(p)]
      } catch {
        // mqtt-packet refuses some shapes outright; the mutation fuzzer covers invalid bytes.
        return []
      }
    }),
  )

const login = (clientId: string, password = passwordOf('gas-001')): Packet =>
  ({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 30, username: 'gas-001', password: Buffer.from(password) })

const topicArb = fc.oneof(
  fc.string({ maxLength: 40 }),
  // The device's own subtree, with arbitrary levels: what passes the ACL and reaches the router.
  fc.string({ maxLength: 30 }).map((rest) => `dev/gas-001/${rest}`),
  fc.constantFrom('dev/gas-001/reading', 'dev/gas-002/reading', '$SYS/x', '#', '+/+', 'dev/gas-001/__proto__', '__proto__', 'constructor/prototype', 'a/#/b', ''),
  fc.array(fc.constantFrom('dev', 'gas-001', '+', '#', '__proto__', '', 'x'), { maxLength: 8 }).map((parts) => parts.join('/')),
)
const idArb = fc.integer({ min: 1, max: 65535 })
const packetArb: fc.Arbitrary<Packet> = fc.oneof(
  fc.record({ cmd: fc.constant('publish'), topic: topicArb, payload: fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)), qos: fc.constantFrom(0, 1, 2), retain: fc.boolean(), dup: fc.boolean(), messageId: idArb }),
  fc.record({ cmd: fc.constant('subscribe'), messageId: idArb, subscriptions: fc.array(fc.record({ topic: topicArb, qos: fc.constantFrom(0, 1, 2) }), { minLength: 1, maxLength: 4 }) }),
  fc.record({ cmd: fc.constant('unsubscribe'), messageId: idArb, unsubscriptions: fc.array(topicArb, { minLength: 1, maxLength: 4 }) }),
  fc.record({ cmd: fc.constantFrom('puback', 'pubrec', 'pubrel', 'pubcomp'), messageId: idArb }),
  fc.record({ cmd: fc.constantFrom('pingreq', 'disconnect') }),
  fc.record({
    cmd: fc.constant('connect'),
    protocolId: fc.constantFrom('MQTT', 'MQIsdp'),
    protocolVersion: fc.constantFrom(3, 4),
    clean: fc.boolean(),
    clientId: fc.string({ maxLength: 30 }),
    keepalive: fc.integer({ min: 0, max: 65535 }),
    username: fc.option(fc.constantFrom('gas-001', '__proto__', 'constructor', 'nobody'), { nil: undefined }),
    password: fc.option(fc.string({ maxLength: 20 }).map((s) => Buffer.from(s)), { nil: undefined }),
  }),
)

describe('broker fuzzing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-fuzz-'))
  const snapshots = join(dir, 'snapshots')
  let broker: BrokerProcess
  let port: number
  let control: MqttClient
  let watcher: MqttClient
  let seq = 0

  /** A QoS 1 round trip from a device to a gateway subscriber: the broker is up and routing. */
  async function roundTrip(): Promise<void> {
    const body = `control-${seq++}`
    const got = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`control message ${body} not routed`)), 5000)
      const onMessage = (_t: string, p: Buffer) => {
        if (p.toString() !== body) return
        clearTimeout(timer)
        watcher.off('message', onMessage)
        resolve()
      }
      watcher.on('message', onMessage)
    })
    await control.publishAsync('dev/gas-001/control', body, { qos: 1 })
    await got
  }

  beforeAll(async () => {
    port = await freePort()
    const config = writeBrokerConfig(dir, {
      id: 'fuzz-broker',
      broker: {
        ...brokerDefaults,
        // The fuzzer opens hundreds of connections from one address; the rate limit has its own test.
        limits: { ...brokerDefaults.limits, connectsPerSecondPerAddress: 10_000, maxPacketBytes: 64 * 1024 },
        tcp: { host: '127.0.0.1', port },
        persistence: { path: join(dir, 'broker.db'), synchronous: 'normal' },
      },
      devices: [
        { id: 'gas-001', secret: await hashPassword(passwordOf('gas-001')) },
        { id: GATEWAY_ID, secret: await hashPassword(passwordOf(GATEWAY_ID)), role: 'gateway' },
      ],
      http: { host: '127.0.0.1', port: 0 },
    })
    mkdirSync(snapshots)
    broker = await startBrokerProcess(config, { nodeFlags: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshots}`] })
    const options = { reconnectPeriod: 0 }
    watcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { ...options, clientId: 'fuzz-watcher', username: GATEWAY_ID, password: passwordOf(GATEWAY_ID) })
    await watcher.subscribeAsync('dev/gas-001/control', { qos: 1 })
    control = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { ...options, clientId: 'fuzz-control', username: 'gas-001', password: passwordOf('gas-001') })
  }, 30_000)

  afterAll(async () => {
    // The fuzzer reached past the front door: logins, refusals, ACL checks and routed publishes.
    const text = await (await fetch(`http://127.0.0.1:${broker.ports.http}/metrics`)).text()
    const total = (name: string) => [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0)
    expect(total('broker_connections_total')).toBeGreaterThan(500)
    expect(total('broker_auth_failures_total')).toBeGreaterThan(10)
    expect(total('broker_acl_denied_total')).toBeGreaterThan(10)
    expect(total('broker_messages_in_total')).toBeGreaterThan(20)
    await control?.endAsync(true)
    await watcher?.endAsync(true)
    await broker?.stop()
    removeTestDir(dir)
  })

  it('property-based packet sequences, valid login or not, never take the broker down', async () => {
    let cases = 0
    await fc.assert(
      fc.asyncProperty(
        // Three in four cases log in first, so most packets meet the ACL and the router, not just auth.
        fc.integer({ min: 0, max: 3 }).map((n) => n > 0),
        fc.array(packetArb, { maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 6 }),
        async (withLogin, packets, chunks) => {
          await feed(port, encode(packets), chunks, withLogin ? encode([login(`fuzz-${cases}`)]) : undefined)
          if (++cases % 25 === 0) await roundTrip()
          expect(broker.child.exitCode).toBeNull()
        },
      ),
      { numRuns: 300 },
    )
    await roundTrip()
  }, 120_000)

  it('byte mutations of valid packets never take the broker down, and memory stays bounded', async () => {
    const valid = encode([
      login('mutant'),
      { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'cmd/gas-001/#', qos: 1 }] },
      { cmd: 'publish', topic: 'dev/gas-001/reading', payload: Buffer.from('{"quantity":"gas","value":1}'), qos: 1, messageId: 2, retain: false, dup: false },
      { cmd: 'pingreq' },
    ])
    const mutation = fc.oneof(
      fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
      fc.record({ op: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
      fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
    )
    type Mutation = { op: string; at: number; bit?: number; value?: number; bytes?: Uint8Array; count?: number }
    const mutate = (base: Buffer, ms: Mutation[]) => {
      let b = Buffer.from(base)
      for (const m of ms) {
        const at = m.at % Math.max(1, b.length)
        if (m.op === 'flip') b[at] ^= 1 << m.bit!
        else if (m.op === 'set') b[at] = m.value!
        else if (m.op === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.from(m.bytes!), b.subarray(at)])
        else if (m.op === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.count!)])
        else b = b.subarray(0, at)
      }
      return b
    }
    let cases = 0
    let warmHeap = 0
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.array(fc.integer({ min: 1, max: 32 }), { maxLength: 4 }), async (ms, chunks) => {
        await feed(port, mutate(valid, ms), chunks)
        if (++cases === 50) warmHeap = await liveHeapMb(broker.child, snapshots)
        if (cases % 50 === 0) await roundTrip()
        expect(broker.child.exitCode).toBeNull()
      }),
      { numRuns: 400 },
    )
    await roundTrip()
    // 350 more hostile connections after warm-up must leave nothing of note behind: a leak of even
    // 10 kB per connection would show as 3.5 MB.
    const grown = (await liveHeapMb(broker.child, snapshots)) - warmHeap
    console.log(`[fuzz] broker live heap grew ${grown.toFixed(2)} MB over 350 mutated connections (from ${warmHeap.toFixed(1)} MB)`)
    expect(grown).toBeLessThan(2)
  }, 180_000)
})
