/**
 * The gateway in external mode against a real Mosquitto: it logs in with its own identity, reads
 * devices' topics with a persistent session, PUBACKs only after its outbox commit (while it reads
 * on, in order, never on a later connection), answers devices
 * on their command topics, and picks up what Mosquitto queued while the gateway was down.
 */
import { execFile } from 'node:child_process'
import { createServer, type Socket } from 'node:net'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Aedes } from 'aedes'
import mqtt from 'mqtt'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../../common/ports.ts'
import { silentLogger } from '../../common/logger.ts'
import type { GatewayConfig } from '../../gateway/config/schema.ts'
import { ExternalBrokerInput } from '../../gateway/inputs/mqtt/external-broker.ts'
import type { Pipeline } from '../../gateway/pipeline.ts'
import { startMosquitto, type RunningMosquitto } from '../../bench/lib/mosquitto.ts'
import type { Gateway } from '../../gateway/gateway.ts'
import { describeWith, MOSQUITTO, MOSQUITTO_CLIENTS } from '../helpers/binaries.ts'
import { startGateway } from '../helpers/stack.ts'
import { waitFor } from '../helpers/wait.ts'
import { connectAs, GATEWAY_ID, passwordOf, startTestBroker } from '../helpers/broker.ts'

const run = promisify(execFile)
const users = { 'gw-tangquan': 'gateway-password-0123', 'gas-001': 'device-password-0123', 'phone-001': 'phone-password-0123' }

describeWith([MOSQUITTO, MOSQUITTO_CLIENTS])('gateway with an external Mosquitto broker', () => {
  let mosquitto: RunningMosquitto
  let gateway: Gateway | undefined
  const dataDir = mkdtempSync(join(tmpdir(), 'gw-external-'))
  const start = () =>
    startGateway({
      dataDir,
      overrides: {
        broker: {
          mode: 'external',
          tcp: null,
          external: { url: `mqtt://127.0.0.1:${mosquitto.port}`, username: 'gw-tangquan', password: users['gw-tangquan'], clientId: 'gw-tangquan', topic: 'dev/+/+' },
        },
      },
    })
  const pub = (device: keyof typeof users, topic: string, message: string) =>
    run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(mosquitto.port), '-u', device, '-P', users[device], '-q', '1', '-t', topic, '-m', message])
  const stored = (g: Gateway, pred: (e: { device: string; kind: string; payload: Record<string, unknown> }) => boolean) =>
    g.outbox
      .peek(100_000)
      .map((r) => JSON.parse(r.body) as { device: string; kind: string; payload: Record<string, unknown> })
      .filter(pred)

  beforeAll(async () => {
    mosquitto = await startMosquitto({ users })
    gateway = await start()
  })
  afterAll(async () => {
    await gateway?.stop()
    await mosquitto?.stop()
  })

  it('stores a QoS 1 reading a device sent through Mosquitto, and raises the alarm for it', async () => {
    const ts = Date.now()
    await pub('gas-001', 'dev/gas-001/reading', JSON.stringify({ ts, quantity: 'gas', value: 61 }))
    const rows = await waitFor(() => {
      const r = stored(gateway!, (e) => e.device === 'gas-001' && e.kind === 'reading' && e.payload.value === 61)
      return r.length > 0 ? r : undefined
    })
    expect(rows).toHaveLength(1)
    await waitFor(() => (stored(gateway!, (e) => e.kind === 'alert' && e.device === 'gas-001').length > 0 ? true : undefined), { what: 'the alarm' })
  })

  it('tells the device why its message was refused, on its command topic at Mosquitto', async () => {
    const sub = run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(mosquitto.port), '-u', 'phone-001', '-P', users['phone-001'], '-q', '1', '-C', '1', '-W', '10', '-t', 'cmd/phone-001/#'])
    // mosquitto_sub prints nothing until the SUBACK; publish until the nack gets through.
    let done = false
    void sub.finally(() => (done = true))
    await waitFor(async () => {
      if (done) return true
      await pub('phone-001', 'dev/phone-001/scan', 'not json')
      return undefined
    }, { intervalMs: 200, what: 'a nack' })
    const { stdout } = await sub
    expect(JSON.parse(stdout)).toMatchObject({ code: 'GW_PAYLOAD_NOT_JSON', topic: 'dev/phone-001/scan' })
  })

  it('picks up what Mosquitto queued in its session while the gateway was stopped', async () => {
    await gateway!.stop()
    gateway = undefined
    const values = [11.1, 11.2, 11.3]
    for (const value of values) await pub('gas-001', 'dev/gas-001/reading', JSON.stringify({ ts: Date.now(), quantity: 'gas', value }))
    gateway = await start()
    const readings = () => stored(gateway!, (e) => e.kind === 'reading' && values.includes(e.payload.value as number))
    await waitFor(() => (readings().length >= values.length ? true : undefined), { what: 'queued readings' })
    expect(readings().map((e) => e.payload.value)).toEqual(values)
  })
})

describe('gateway with GridWatch\'s own standalone broker, in external mode', () => {
  it('reads a device\'s QoS 1 reading with its gateway identity and answers the device on its command topic', async () => {
    const broker = await startTestBroker()
    const gateway = await startGateway({
      overrides: {
        broker: {
          mode: 'external',
          tcp: null,
          external: { url: `mqtt://127.0.0.1:${broker.broker.ports.tcp}`, username: GATEWAY_ID, password: passwordOf(GATEWAY_ID), clientId: 'gw-external', topic: 'dev/+/+' },
        },
      },
    })
    try {
      const device = await connectAs(`mqtt://127.0.0.1:${broker.broker.ports.tcp}`, 'gas-001')
      await device.subscribeAsync('cmd/gas-001/#', { qos: 1 })
      const nack = new Promise<Record<string, unknown>>((resolve) => device.once('message', (_t, p) => resolve(JSON.parse(p.toString()) as Record<string, unknown>)))
      await device.publishAsync('dev/gas-001/reading', JSON.stringify({ ts: Date.now(), quantity: 'gas', value: 7.25 }), { qos: 1 })
      await waitFor(() =>
        gateway.outbox.peek(1000).some((r) => (JSON.parse(r.body) as { kind: string; payload: { value?: number } }).payload.value === 7.25) ? true : undefined,
      )
      await device.publishAsync('dev/gas-001/reading', 'not json', { qos: 1 })
      expect(await nack).toMatchObject({ code: 'GW_PAYLOAD_NOT_JSON', topic: 'dev/gas-001/reading' })
      await device.endAsync()
    } finally {
      await gateway.stop()
      await broker.stop()
    }
  })
})

/** External mode at `url` as `clientId`, over a pipeline whose commits the test finishes by hand. */
function heldInput(url: string, clientId: string) {
  const accepted: { value: string; done: (err: Error | null) => void }[] = []
  const pipeline = {
    accept: (msg: { raw: Buffer }, done: (err: Error | null) => void) => void accepted.push({ value: msg.raw.toString(), done }),
    rejectedTopic: () => {},
  } as unknown as Pipeline
  const config = { broker: { external: { url, clientId, topic: 'dev/+/+' } } } as unknown as GatewayConfig
  return { input: new ExternalBrokerInput(config, pipeline, silentLogger(), new Registry()), accepted }
}

/**
 * A scripted office broker (mqtt-packet over TCP): it accepts the gateway's CONNECT (a new session
 * the first time, a resumed one after) and SUBSCRIBE, then sends exactly the packets the test
 * writes, to the newest connection or to any it kept. It logs every packet it gets
 * (`c<connection>:<cmd>[:<id>]`) and the PUBACKs' ids.
 */
async function scriptedBroker(opts: { pauseAfterSuback?: boolean } = {}) {
  const port = await freePort()
  const log: string[] = []
  const pubacks: number[] = []
  const conns: { socket: Socket; send(p: Packet): void }[] = []
  let subscribedOnce: () => void = () => {}
  const subscribed = new Promise<void>((resolve) => (subscribedOnce = resolve))
  const server = createServer((socket) => {
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    const n = conns.length
    const send = (p: Packet) => socket.write(mqttPacket.generate(p))
    conns.push({ socket, send })
    parser.on('packet', (p: Packet) => {
      log.push(`c${n}:${p.cmd}${'messageId' in p && p.messageId ? `:${p.messageId}` : ''}`)
      if (p.cmd === 'connect') send({ cmd: 'connack', returnCode: 0, sessionPresent: n > 0 })
      else if (p.cmd === 'subscribe') {
        send({ cmd: 'suback', messageId: p.messageId, granted: p.subscriptions.map(() => 1) })
        subscribedOnce()
        if (opts.pauseAfterSuback) socket.pause()
      } else if (p.cmd === 'puback') pubacks.push(p.messageId!)
      else if (p.cmd === 'pingreq') send({ cmd: 'pingresp' })
      else if (p.cmd === 'disconnect') socket.end()
    })
    socket.on('data', (d) => parser.parse(d))
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return {
    url: `mqtt://127.0.0.1:${port}`,
    log,
    pubacks,
    conns,
    subscribed,
    publish: (p: Packet) => conns.at(-1)!.send(p),
    close: () => {
      for (const c of conns) c.socket.destroy()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

describe('external mode: PUBACKs wait for the outbox, not for each other', () => {
  /** A real Aedes as the office broker, recording every PUBACK it gets from the gateway, in order. */
  async function officeBroker() {
    const aedes = await Aedes.createBroker()
    const server = createServer(aedes.handle)
    const port = await freePort()
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
    const acked: string[] = []
    aedes.on('ack', (packet) => {
      if (packet && 'payload' in packet) acked.push(String(packet.payload))
    })
    return {
      url: `mqtt://127.0.0.1:${port}`,
      aedes,
      acked,
      async close() {
        await new Promise<void>((resolve) => aedes.close(() => resolve()))
        await new Promise<void>((resolve) => server.close(() => resolve()))
      },
    }
  }

  it('reads on while messages commit, acknowledges each only after its commit and in order, and never what failed', async () => {
    const office = await officeBroker()
    const { input, accepted } = heldInput(office.url, 'gw-held')
    const device = await mqtt.connectAsync(office.url, { clientId: 'gas-held', reconnectPeriod: 0 })
    try {
      await input.start()
      for (const value of ['1', '2', '3', '4', '5']) await device.publishAsync('dev/gas-held/reading', value, { qos: 1 })
      // All five are being committed at once: the gateway did not wait for one commit to read the next.
      await waitFor(() => (accepted.length === 5 ? true : undefined), { what: 'five messages in the pipeline at once' })
      expect(office.acked).toEqual([])

      // Committed out of order: nothing is acknowledged ahead of an earlier message.
      accepted[1].done(null)
      accepted[2].done(null)
      await new Promise((resolve) => setImmediate(resolve))
      expect(office.acked).toEqual([])
      accepted[0].done(null)
      await waitFor(() => (office.acked.length === 3 ? true : undefined), { what: 'three PUBACKs' })
      expect(office.acked).toEqual(['1', '2', '3'])

      // The fourth fails to commit: the connection drops, and the fifth, committed after, is not
      // acknowledged on it. The broker resends both when the session resumes.
      accepted[3].done(new Error('disk I/O error'))
      accepted[4].done(null)
      await waitFor(() => (accepted.length === 7 ? true : undefined), { what: 'the resent messages', timeoutMs: 10_000 })
      expect(office.acked).toEqual(['1', '2', '3'])
      expect(accepted.slice(5).map((a) => a.value)).toEqual(['4', '5'])
      accepted[5].done(null)
      accepted[6].done(null)
      await waitFor(() => (office.acked.length === 5 ? true : undefined), { what: 'the last PUBACKs' })
      expect(office.acked).toEqual(['1', '2', '3', '4', '5'])
    } finally {
      await device.endAsync()
      await input.stop()
      await office.close()
    }
  })

  it('on stop, sends the PUBACKs owed for messages whose commit finishes, then disconnects', async () => {
    const office = await officeBroker()
    const { input, accepted } = heldInput(office.url, 'gw-stop')
    const device = await mqtt.connectAsync(office.url, { clientId: 'gas-stop', reconnectPeriod: 0 })
    try {
      await input.start()
      for (const value of ['a', 'b']) await device.publishAsync('dev/gas-stop/reading', value, { qos: 1 })
      await waitFor(() => (accepted.length === 2 ? true : undefined), { what: 'two messages in the pipeline' })
      const stopped = input.stop()
      // Commits finish after the stop began: after the gateway disconnected, had it not waited
      // (bounded, for this test, by the disconnect the broker would see).
      await Promise.race([new Promise((resolve) => office.aedes.once('clientDisconnect', resolve)), new Promise((resolve) => setTimeout(resolve, 300))])
      for (const a of accepted) a.done(null)
      await stopped
      expect(office.acked).toEqual(['a', 'b'])
    } finally {
      await device.endAsync()
      await office.close()
    }
  })
})

describe('external mode: connections that end badly', () => {
  const pub = (id: number, qos: 1 | 2, value: string): Packet => ({ cmd: 'publish', topic: 'dev/gas-001/reading', payload: Buffer.from(value), qos, messageId: id, dup: false, retain: false })

  it('a message read after its connection closed does not hold up the next connection\'s PUBACKs', async () => {
    const broker = await scriptedBroker()
    const { input, accepted } = heldInput(broker.url, 'gw-stale')
    try {
      await input.start()
      const first = broker.conns[0]
      first.send(pub(1, 2, 'q2'))
      await waitFor(() => (broker.log.includes('c0:pubrec:1') ? true : undefined), { what: 'PUBREC' })
      // PUBREL and a QoS 1 PUBLISH in one write: both parsed while the QoS 2 commit is pending.
      first.socket.write(Buffer.concat([mqttPacket.generate({ cmd: 'pubrel', messageId: 1 }), mqttPacket.generate(pub(2, 1, 'stale'))]))
      await waitFor(() => (accepted.length === 1 ? true : undefined), { what: 'the QoS 2 message in its commit' })
      const client = (input as unknown as { client: { connected: boolean } }).client
      first.socket.destroy()
      await waitFor(() => (client.connected === false ? true : undefined), { what: 'the close' })
      // Both commits fail (a full disk fails them together); MQTT.js then goes on to the stale message.
      accepted[0].done(new Error('disk I/O error'))
      for (const a of accepted.slice(1)) a.done(new Error('disk I/O error'))
      // The session resumes (session present): no SUBSCRIBE is needed on the new connection.
      await waitFor(() => (broker.log.includes('c1:connect') && client.connected ? true : undefined), { what: 'the new connection' })
      broker.conns[1].send(pub(3, 1, 'fresh'))
      const fresh = await waitFor(() => accepted.find((a) => a.value === 'fresh'), { what: 'the new connection\'s message' })
      fresh.done(null)
      await waitFor(() => (broker.log.includes('c1:puback:3') ? true : undefined), { what: 'its PUBACK' })
    } finally {
      await input.stop()
      await broker.close()
    }
  }, 20_000)

  it('stop drops a connection whose DISCONNECT does not go through', async () => {
    const broker = await scriptedBroker({ pauseAfterSuback: true })
    const { input } = heldInput(broker.url, 'gw-stuck')
    try {
      await input.start()
      const client = (input as unknown as { client: { stream: { destroyed: boolean } } }).client
      await input.stop()
      expect(client.stream.destroyed).toBe(true)
    } finally {
      await broker.close()
    }
  }, 20_000)
})

describe('external mode: the office broker reuses packet ids', () => {

  it('stops promptly while the office broker is still sending a backlog', async () => {
    const office = await scriptedBroker()
    const gateway = await startGateway({ overrides: { broker: { mode: 'external', tcp: null, external: { url: office.url, clientId: 'gw-backlog', topic: 'dev/+/+' } } } })
    let stopped = false
    try {
      await office.subscribed
      const ts = Date.now() - 60_000
      // 150,000 messages, about 10 MB, written at once: more than the gateway reads in the 2 s it
      // waits for owed PUBACKs, so the broker's end of the connection sits behind unread data.
      for (let i = 0; i < 150_000; i++) {
        const payload = Buffer.from(JSON.stringify({ ts: ts + i, quantity: 'gas', value: i % 50 }))
        office.publish({ cmd: 'publish', topic: 'dev/gas-001/reading', payload, qos: 1, messageId: (i % 65_535) + 1, dup: false, retain: false })
      }
      await waitFor(() => (office.pubacks.length > 0 ? true : undefined), { what: 'the first PUBACK' })
      // A hang here is the failure (the test's timeout); before 2026-11-27 it never returned.
      await gateway.stop()
      stopped = true
      expect(office.pubacks.length).toBeGreaterThan(0)
    } finally {
      if (!stopped) await gateway.stop()
      await office.close()
    }
  }, 20_000)

  it("keeps two devices' identical messages on a reused packet id apart, and takes a resend as a redelivery", async () => {
    const office = await scriptedBroker()
    const gateway = await startGateway({ overrides: { broker: { mode: 'external', tcp: null, external: { url: office.url, clientId: 'gw-reuse', topic: 'dev/+/+' } } } })
    try {
      await office.subscribed
      const ts = Date.now() - 1000
      const payload = Buffer.from(JSON.stringify({ ts, quantity: 'gas', value: 6.543 }))
      const publish = (device: string, dup: boolean) => office.publish({ cmd: 'publish', topic: `dev/${device}/reading`, payload, qos: 1, messageId: 7, dup, retain: false })
      const acked = async (n: number) => waitFor(() => (office.pubacks.length >= n ? true : undefined), { what: `${n} PUBACKs` })
      // The same payload from two devices, each on id 7 once the one before was acknowledged.
      publish('gas-001', false)
      await acked(1)
      publish('gas-002', false)
      await acked(2)
      // The broker resends the last one (a lost PUBACK), with DUP or, after a crash, without.
      publish('gas-002', true)
      await acked(3)
      publish('gas-002', false)
      await acked(4)
      expect(office.pubacks).toEqual([7, 7, 7, 7])
      const stored = (device: string) => gateway.outbox.peek(100_000).filter((r) => r.body.includes('6.543') && r.body.includes(`"device":"${device}"`)).length
      expect({ gas001: stored('gas-001'), gas002: stored('gas-002') }).toEqual({ gas001: 1, gas002: 1 })
    } finally {
      await gateway.stop()
      await office.close()
    }
  })
})
