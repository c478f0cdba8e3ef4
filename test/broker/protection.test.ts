/**
 * The broker's protections, each against a real client doing the bad thing: oversized packets,
 * too many connections, connect storms, a publisher over its rate (slowed, never dropped), a
 * silent client, a subscriber that stops reading, and names like `__proto__`.
 */
import { connect as tcpConnect } from 'node:net'
import type { MqttClient } from 'mqtt'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { brokerDefaults } from '../../broker/config.ts'
import type { StandaloneBroker } from '../../broker/standalone.ts'
import { brokerMetric, connectAs, GATEWAY_ID, passwordOf, startTestBroker } from '../helpers/broker.ts'
import { RawMqtt } from '../helpers/raw-mqtt.ts'
import { capturingLogger } from '../helpers/stack.ts'
import { waitFor } from '../helpers/wait.ts'

const metricOf = brokerMetric

describe('broker protections', () => {
  let broker: StandaloneBroker | undefined
  const clients: MqttClient[] = []
  let lines: string[] = []
  const start = async (limits: Partial<typeof brokerDefaults.limits>) => {
    const captured = capturingLogger('broker')
    lines = captured.lines
    broker = await startTestBroker({ logger: captured.logger, settings: { limits: { ...brokerDefaults.limits, connectsPerSecondPerAddress: 10_000, ...limits } } })
    return { broker, url: `mqtt://127.0.0.1:${broker.broker.ports.tcp}` }
  }
  const track = (c: MqttClient) => (clients.push(c), c)
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)))
    await broker?.stop()
    broker = undefined
  })
  afterAll(async () => {
    await broker?.stop()
  })

  it('refuses a Will topic no PUBLISH could carry, and a topic with U+0000 or ill-formed UTF-8', async () => {
    const { broker, url } = await start({})
    for (const topic of ['dev/gas-001/#', 'dev/gas-001/+/x', 'dev/gas-001/a\u0000b']) {
      const refused = await connectAs(url, 'gas-001', { will: { topic, payload: Buffer.from('{"state":"offline"}'), qos: 1, retain: true } }).then(
        (c) => (track(c), undefined),
        (e: { code?: number }) => e.code,
      )
      expect(refused, JSON.stringify(topic)).toBe(5)
    }
    const gateway = track(await connectAs(url, GATEWAY_ID))
    const got: string[] = []
    gateway.on('message', (topic) => got.push(topic))
    await gateway.subscribeAsync('dev/#', { qos: 1 })
    // Raw bytes: MQTT.js would not send these. The topic's last byte is 0x00, then 0xFF (not UTF-8).
    for (const bad of [Buffer.from('dev/gas-001/a\u0000', 'utf8'), Buffer.concat([Buffer.from('dev/gas-001/'), Buffer.from([0xff])])]) {
      const raw = await RawMqtt.open(broker.broker.ports.tcp!)
      await raw.login('raw-bad', 'gas-001', passwordOf('gas-001'))
      const closed = new Promise<void>((resolve) => raw.socket.once('close', () => resolve()))
      const body = Buffer.concat([Buffer.from([bad.length >> 8, bad.length & 0xff]), bad, Buffer.from([0, 1]), Buffer.from('{}')])
      raw.socket.write(Buffer.concat([Buffer.from([0x32, body.length]), body]))
      await closed
    }
    const dev = track(await connectAs(url, 'gas-001'))
    await dev.publishAsync('dev/gas-001/sentinel', '{}', { qos: 1 })
    await waitFor(() => (got.includes('dev/gas-001/sentinel') ? true : undefined))
    expect(got).toEqual(['dev/gas-001/sentinel'])
  })

  it('closes a connection whose packet is over maxPacketBytes, before its body arrives, and serves the next client', async () => {
    const { broker, url } = await start({ maxPacketBytes: 4096 })
    const dev = track(await connectAs(url, 'gas-001'))
    const closed = new Promise<void>((resolve) => dev.once('close', () => resolve()))
    dev.publish('dev/gas-001/reading', Buffer.alloc(8192, 1), { qos: 1 })
    await closed
    expect(await metricOf(broker, 'broker_connections_refused_total', 'listener="tcp",reason="packet_too_large"')).toBe(1)

    // A header that declares 200 MB: closed on the header alone, nothing buffered.
    const raw = await RawMqtt.open(broker.broker.ports.tcp!)
    await raw.login('big', 'gas-002', passwordOf('gas-002'))
    const rawClosed = new Promise<void>((resolve) => raw.socket.once('close', () => resolve()))
    raw.socket.write(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x64]))
    await rawClosed
    expect(await metricOf(broker, 'broker_connections_refused_total', 'listener="tcp",reason="packet_too_large"')).toBe(2)

    const next = track(await connectAs(url, 'gas-001'))
    await next.publishAsync('dev/gas-001/reading', '{}', { qos: 1 })
  })

  it('refuses connections over maxConnections, counted', async () => {
    const { broker, url } = await start({ maxConnections: 3 })
    for (let i = 0; i < 3; i++) track(await connectAs(url, 'gas-001'))
    await expect(connectAs(url, 'gas-002')).rejects.toThrow()
    expect(await metricOf(broker, 'broker_connections_refused_total', 'listener="tcp",reason="max_connections"')).toBe(1)
    await clients.pop()!.endAsync()
    await waitFor(async () => (await connectAs(url, 'gas-002').then(track, () => undefined)) ?? undefined, { what: 'a free connection slot' })
  })

  it('limits connects per second from one address: a storm is cut short, counted', async () => {
    const { broker } = await start({ connectsPerSecondPerAddress: 5 })
    const port = broker.broker.ports.tcp!
    // 30 raw TCP connects at once from 127.0.0.1: the bucket holds 5 (burst), a few refill.
    const sockets = await Promise.all(
      Array.from(
        { length: 30 },
        () =>
          new Promise<{ closedByBroker: boolean }>((resolve) => {
            const s = tcpConnect(port, '127.0.0.1')
            const timer = setTimeout(() => (s.destroy(), resolve({ closedByBroker: false })), 1000)
            s.once('close', () => (clearTimeout(timer), resolve({ closedByBroker: true })))
            s.on('error', () => {})
          }),
      ),
    )
    const refused = await metricOf(broker, 'broker_connections_refused_total', 'listener="tcp",reason="connect_rate"')
    expect(refused).toBeGreaterThanOrEqual(20)
    expect(sockets.filter((s) => s.closedByBroker).length).toBe(refused)
    // Every refusal counted, but the storm does not flood the log: one line per address and reason.
    expect(lines.filter((l) => l.includes('BROKER_CONNECTION_REFUSED')).length).toBe(1)
  })

  it('slows a publisher over messagesPerSecondPerClient with back-pressure, and drops none of its messages', async () => {
    const { broker, url } = await start({ messagesPerSecondPerClient: 200 })
    const gw = track(await connectAs(url, GATEWAY_ID))
    await gw.subscribeAsync('dev/gas-001/#', { qos: 1 })
    const received = new Set<string>()
    gw.on('message', (_t, p) => received.add(p.toString()))
    const dev = track(await connectAs(url, 'gas-001'))
    const count = 600
    await Promise.all(Array.from({ length: count }, (_, i) => dev.publishAsync('dev/gas-001/reading', String(i), { qos: 1 })))
    await waitFor(() => (received.size === count ? true : undefined), { what: `all ${count} messages` })
    expect(await metricOf(broker, 'broker_backpressure_waits_total', 'reason="client_rate"')).toBeGreaterThan(0)
    expect(await metricOf(broker, 'broker_messages_dropped_total', 'reason="acl"')).toBe(0)
  })

  it('refuses a keepalive over the maximum with CONNACK 2, and disconnects a client silent for 1.5× its keepalive', async () => {
    const { broker } = await start({ keepaliveMaxSeconds: 60 })
    const port = broker.broker.ports.tcp!
    const raw = await RawMqtt.open(port)
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'ka-61', keepalive: 61, username: 'gas-001', password: Buffer.from(passwordOf('gas-001')) })
    const connack = (await raw.next((p) => p.cmd === 'connack')) as { returnCode: number }
    expect(connack.returnCode).toBe(2)
    raw.close()
    expect(await metricOf(broker, 'broker_connections_refused_total', 'listener="tcp",reason="keepalive"')).toBe(1)

    const silent = await RawMqtt.open(port)
    silent.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'silent', keepalive: 1, username: 'gas-001', password: Buffer.from(passwordOf('gas-001')) })
    await silent.next((p) => p.cmd === 'connack')
    // No PINGREQ ever: the broker must close within 1.5 s (plus slack for a busy machine).
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('silent client still connected')), 5000)
      silent.socket.once('close', () => (clearTimeout(timer), resolve()))
    })
    expect(await metricOf(broker, 'broker_forced_disconnects_total', 'reason="keepalive_timeout"')).toBe(1)
  })

  it('accepts a keepalive of 0 (the client checks nothing) and holds that client to the maximum', async () => {
    const { broker } = await start({ keepaliveMaxSeconds: 1 })
    const raw = await RawMqtt.open(broker.broker.ports.tcp!)
    const closed = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('a silent keepalive-0 client is still connected')), 5000)
      raw.socket.once('close', () => (clearTimeout(timer), resolve()))
    })
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'ka-0', keepalive: 0, username: 'gas-001', password: Buffer.from(passwordOf('gas-001')) })
    expect(await raw.next((p) => p.cmd === 'connack')).toMatchObject({ returnCode: 0 })
    await closed
    expect(await metricOf(broker, 'broker_forced_disconnects_total', 'reason="keepalive_timeout"')).toBe(1)
    expect(await metricOf(broker, 'broker_connections_refused_total', 'listener="tcp",reason="keepalive"')).toBe(0)
  })

  it('disconnects a subscriber that stops reading, and keeps serving everyone else', async () => {
    const { broker, url } = await start({ drainTimeoutMs: 300 })
    const slow = await RawMqtt.open(broker.broker.ports.tcp!)
    await slow.login('slow-gw', GATEWAY_ID, passwordOf(GATEWAY_ID))
    slow.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'dev/gas-001/#', qos: 0 }] })
    await slow.next((p) => p.cmd === 'suback')
    // Stop reading: the kernel buffers fill, then the broker's writes stop draining.
    slow.socket.pause()
    const slowClosed = new Promise<void>((resolve) => slow.socket.once('close', () => resolve()))
    const dev = track(await connectAs(url, 'gas-001'))
    const payload = Buffer.alloc(64 * 1024, 7)
    let stop = false
    void slowClosed.then(() => (stop = true))
    for (let i = 0; i < 2000 && !stop; i++) await dev.publishAsync('dev/gas-001/reading', payload, { qos: 1 })
    // Each of those publishes was acknowledged while the subscriber was stuck; now it is gone.
    slow.socket.resume()
    await slowClosed
    await waitFor(async () => ((await metricOf(broker, 'broker_forced_disconnects_total', 'reason="slow_consumer"')) === 1 ? true : undefined), {
      what: 'slow consumer counted',
    })
    const other = track(await connectAs(url, GATEWAY_ID))
    await other.subscribeAsync('dev/gas-001/#', { qos: 1 })
    const got = new Promise<string>((resolve) => other.once('message', (_t, p) => resolve(p.toString())))
    await dev.publishAsync('dev/gas-001/reading', 'still here', { qos: 1 })
    expect(await got).toBe('still here')
  }, 60_000)

  it('handles client ids and topics named __proto__, constructor and prototype like any other name', async () => {
    const { broker, url } = await start({})
    const names = ['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString']
    const gw = track(await connectAs(url, GATEWAY_ID, { clientId: 'watcher' }))
    await gw.subscribeAsync('dev/gas-001/#', { qos: 1 })
    const topics: string[] = []
    gw.on('message', (t) => topics.push(t))
    for (const name of names) {
      const dev = track(await connectAs(url, 'gas-001', { clientId: name, clean: false }))
      await dev.subscribeAsync(`cmd/gas-001/${name}`, { qos: 1 })
      await dev.publishAsync(`dev/gas-001/${name}`, name, { qos: 1, retain: true })
      await dev.endAsync()
    }
    await waitFor(() => (topics.length === names.length ? true : undefined), { what: 'every message' })
    expect(topics).toEqual(names.map((n) => `dev/gas-001/${n}`))
    // Unknown usernames shaped like Object.prototype members are unknown devices, not crashes.
    for (const username of names) {
      await expect(connectAs(url, undefined, { username, password: 'x' })).rejects.toThrow()
    }
    expect(await metricOf(broker, 'broker_auth_failures_total', 'reason="unknown_device"')).toBe(names.length)
    // Persisted sessions under those ids come back intact.
    const back = track(await connectAs(url, 'gas-001', { clientId: '__proto__', clean: false }))
    expect(back.connected).toBe(true)
    expect(Object.getPrototypeOf({})).toBe(Object.prototype)
  })
})
