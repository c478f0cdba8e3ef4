/**
 * The gateway's embedded broker with real MQTT clients: identity, topic ACLs, the PUBACK-after-
 * commit promise, and what a device is told when its message is refused.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import Database from 'better-sqlite3'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Gateway } from '../../gateway/gateway.ts'
import { demoDevicePassword } from '../../devices/demo-credentials.ts'
import { describeWith, hasBinary, MOSQUITTO_CLIENTS } from '../helpers/binaries.ts'
import { capturingLogger, connectDevice, startGateway } from '../helpers/stack.ts'
import { nextEvent, waitFor } from '../helpers/wait.ts'
import { RawMqtt } from '../helpers/raw-mqtt.ts'

const run = promisify(execFile)

describe('gateway broker', () => {
  let gateway: Gateway
  let port: number
  const { logger, lines } = capturingLogger('gateway')
  const clients: MqttClient[] = []
  const connect = async (...args: Parameters<typeof connectDevice>) => {
    const c = await connectDevice(...args)
    clients.push(c)
    return c
  }
  const metric = async (pattern: RegExp) => {
    const text = await gateway.metrics.registry.metrics()
    const m = pattern.exec(text)
    return m ? Number(m[1]) : 0
  }

  beforeAll(async () => {
    // The uplink points nowhere, so every committed row stays in the outbox for inspection.
    gateway = await startGateway({ logger })
    port = gateway.mqtt.port!
  })
  afterAll(async () => {
    // force: a client the broker threw out still holds its unacknowledged publish and would wait.
    await Promise.all(clients.map((c) => c.endAsync(true)))
    await gateway.stop()
  })

  describe('identity', () => {
    it.each([
      ['a wrong password', 'gas-001', 'not-the-password', 'bad_password'],
      ['an unknown device', 'gas-999', 'whatever', 'unknown_device'],
    ])('refuses %s with CONNACK 4, counts it, and never logs the password', async (_name, username, password, reason) => {
      const before = await metric(new RegExp(`broker_auth_failures_total\\{reason="${reason}"\\} (\\d+)`))
      await expect(connectDevice(port, username, { password })).rejects.toMatchObject({ code: 4 })
      expect(await metric(new RegExp(`broker_auth_failures_total\\{reason="${reason}"\\} (\\d+)`))).toBe(before + 1)
      const refusal = lines.find((l) => l.includes('BROKER_AUTH_REFUSED') && l.includes(`"reason":"${reason}"`))
      expect(refusal).toBeDefined()
      expect(lines.join('\n')).not.toContain(password)
    })

    it('refuses an anonymous client with CONNACK 5, as Mosquitto 2 does without allow_anonymous', async () => {
      await expect(connectDevice(port, 'gas-001', { username: undefined, password: undefined })).rejects.toMatchObject({ code: 5 })
      expect(await metric(/broker_auth_failures_total\{reason="anonymous"\} (\d+)/)).toBeGreaterThanOrEqual(1)
    })

    it('refuses a Will aimed at another device\'s topic with CONNACK 5', async () => {
      await expect(
        connectDevice(port, 'gas-001', { will: { topic: 'dev/gas-002/status', payload: Buffer.from('{"state":"offline"}'), qos: 1, retain: false } }),
      ).rejects.toMatchObject({ code: 5 })
    })
  })

  describe('topic ACL', () => {
    it('disconnects a device that publishes to another device\'s topic, and stores nothing', async () => {
      const before = Math.max(0, ...gateway.outbox.peek(100_000).map((row) => row.seq))
      const c = await connect(port, 'gas-001')
      const closed = new Promise<void>((resolve) => c.once('close', () => resolve()))
      c.publish('dev/gas-002/reading', JSON.stringify({ quantity: 'gas', value: 99 }), { qos: 1 })
      await closed
      // Only gas-001's own presence (online, then connection lost) was committed, nothing for gas-002.
      const since = () =>
        gateway.outbox
          .peek(100_000)
          .filter((row) => row.seq > before)
          .sort((a, b) => a.seq - b.seq)
          .map((row) => JSON.parse(row.body) as { device: string; kind: string; payload: { state: string } })
      // The offline event is committed after the socket closes; wait for it, then look at everything.
      await waitFor(() => (since().length >= 2 ? true : undefined), { what: 'presence events' })
      const committed = since()
      expect(committed.map((e) => e.payload.state)).toEqual(['online', 'offline'])
      expect(committed.map((e) => [e.device, e.kind])).toEqual([
        ['gas-001', 'status'],
        ['gas-001', 'status'],
      ])
      expect(await metric(/broker_acl_denied_total\{action="publish"\} (\d+)/)).toBeGreaterThanOrEqual(1)
    })

    it.each([
      ['a JSON status Will speaks for the device: one offline event, its own', '{"state":"offline","reason":"battery"}', 'battery'],
      ['a plain-text Will the gateway cannot take: the broker\'s own offline event', 'offline', 'connection lost'],
    ])('%s', async (_name, payload, reason) => {
      const before = Math.max(0, ...gateway.outbox.peek(100_000).map((row) => row.seq))
      const c = await connect(port, 'gas-001', { will: { topic: 'dev/gas-001/status', payload: Buffer.from(payload), qos: 1, retain: false } })
      c.stream.destroy()
      const since = () =>
        gateway.outbox
          .peek(100_000)
          .filter((row) => row.seq > before)
          .sort((a, b) => a.seq - b.seq)
          .map((row) => JSON.parse(row.body) as { device: string; kind: string; payload: { state: string; reason?: string } })
      await waitFor(() => (since().some((e) => e.payload.state === 'offline') ? true : undefined), { what: 'offline event', timeoutMs: 5000 })
      // A sentinel from another device, committed after anything the drop could still cause.
      const other = await connect(port, 'gas-002')
      await other.publishAsync('dev/gas-002/status', '{"state":"online"}', { qos: 1 })
      const events = since().filter((e) => e.device === 'gas-001')
      expect(events.map((e) => [e.payload.state, e.payload.reason])).toEqual([
        ['online', 'connected'],
        ['offline', reason],
      ])
    })

    it('answers SUBACK 0x80 for another device\'s commands, and grants its own', async () => {
      const c = await connect(port, 'phone-001')
      // MQTT.js rejects the whole call when any filter is refused, carrying the SUBACK.
      const refused = await c.subscribeAsync(['cmd/phone-001/#', 'cmd/gas-001/#', 'dev/+/reading', '$SYS/#'], { qos: 1 }).then(
        () => undefined,
        (err: { packet?: { granted: number[] } }) => err.packet?.granted,
      )
      expect(refused).toEqual([1, 128, 128, 128])
      expect(c.connected).toBe(true)
    })
  })

  describe('acknowledgement', () => {
    it('a QoS 1 PUBACK means the reading is already committed in the outbox file', async () => {
      const c = await connect(port, 'gas-002')
      const ts = Date.now()
      await c.publishAsync('dev/gas-002/reading', JSON.stringify({ ts, quantity: 'gas', value: 7.5 }), { qos: 1 })
      // Read through a separate connection: what this sees is on disk, not in the gateway's memory.
      const db = new Database(gateway.outbox.path, { readonly: true })
      const rows = db.prepare("SELECT body FROM outbox WHERE device = 'gas-002' AND kind = 'reading' AND ts = ?").all(ts) as { body: string }[]
      db.close()
      expect(rows.map((r) => JSON.parse(r.body) as { payload: unknown; office: string })).toEqual([
        expect.objectContaining({ office: 'tangquan', payload: { quantity: 'gas', value: 7.5, unit: '%LEL' } }),
      ])
    })

    it('an alarm-level reading commits the alert with it', async () => {
      const c = await connect(port, 'gas-001')
      await c.publishAsync('dev/gas-001/reading', JSON.stringify({ quantity: 'gas', value: 61 }), { qos: 1 })
      const alerts = gateway.outbox.peek(1000).filter((r) => r.body.includes('"kind":"alert"') && r.body.includes('"device":"gas-001"'))
      expect(alerts).toHaveLength(1)
      expect(JSON.parse(alerts[0].body)).toMatchObject({ payload: { state: 'raised', severity: 'critical', type: 'sensor.threshold', value: 61 } })
    })

    it('a payload that can never be accepted is acknowledged, refused with a reason on cmd/{id}/nack, counted and logged', async () => {
      const c = await connect(port, 'cam-001')
      await c.subscribeAsync('cmd/cam-001/#', { qos: 0 })
      const nack = nextEvent<{ topic: string; payload: Buffer }>((listener) => {
        const h = (topic: string, payload: Buffer) => listener({ topic, payload })
        c.on('message', h)
        return () => c.off('message', h)
      })
      const before = await metric(/gateway_messages_rejected_total\{input="mqtt",code="GW_PAYLOAD_INVALID"\} (\d+)/)
      await c.publishAsync('dev/cam-001/camera', JSON.stringify({ event: 'intrusion', confidence: 7 }), { qos: 1 })
      const got = await nack
      expect(got.topic).toBe('cmd/cam-001/nack')
      expect(JSON.parse(got.payload.toString())).toMatchObject({
        topic: 'dev/cam-001/camera',
        code: 'GW_PAYLOAD_INVALID',
        problems: [{ path: '/confidence' }],
      })
      expect(await metric(/gateway_messages_rejected_total\{input="mqtt",code="GW_PAYLOAD_INVALID"\} (\d+)/)).toBe(before + 1)
      expect(lines.some((l) => l.includes('"code":"GW_PAYLOAD_INVALID"') && l.includes('"device":"cam-001"'))).toBe(true)
    })

    it('a QoS 1 redelivery of a committed message is acknowledged again and not stored twice, DUP flag or not', async () => {
      const raw = await RawMqtt.open(port)
      try {
        await raw.login('raw-gas-002', 'gas-002', demoDevicePassword('gas-002'))
        const payload = Buffer.from(JSON.stringify({ ts: Date.now() - 5, quantity: 'gas', value: 4.321 }))
        const before = gateway.outbox.peek(100_000).filter((r) => r.body.includes('4.321')).length
        raw.send({ cmd: 'publish', topic: 'dev/gas-002/reading', payload, qos: 1, messageId: 4242, dup: false, retain: false })
        await raw.next((p) => p.cmd === 'puback' && p.messageId === 4242)
        raw.received.length = 0
        // The same packet again, as a client resends it after a lost PUBACK.
        raw.send({ cmd: 'publish', topic: 'dev/gas-002/reading', payload, qos: 1, messageId: 4242, dup: true, retain: false })
        await raw.next((p) => p.cmd === 'puback' && p.messageId === 4242)
        raw.received.length = 0
        raw.received.length = 0
        // MQTT.js resends without DUP after a reconnect; it is still the same transmission.
        raw.send({ cmd: 'publish', topic: 'dev/gas-002/reading', payload, qos: 1, messageId: 4242, dup: false, retain: false })
        await raw.next((p) => p.cmd === 'puback' && p.messageId === 4242)
        raw.received.length = 0
        // A reused packet id with a different payload is a new message, not a redelivery.
        const other = Buffer.from(JSON.stringify({ ts: Date.now(), quantity: 'gas', value: 4.3211 }))
        raw.send({ cmd: 'publish', topic: 'dev/gas-002/reading', payload: other, qos: 1, messageId: 4242, dup: true, retain: false })
        await raw.next((p) => p.cmd === 'puback' && p.messageId === 4242)
        const rows = gateway.outbox.peek(100_000).filter((r) => r.body.includes('4.321'))
        expect(rows.length - before).toBe(2)
        expect(await metric(/gateway_redeliveries_dropped_total\{input="mqtt"\} (\d+)/)).toBe(2)
      } finally {
        raw.close()
      }
    })

    it('a topic outside the scheme is refused with GW_TOPIC_INVALID, and the connection stays up', async () => {
      const c = await connect(port, 'gas-002')
      await c.publishAsync('dev/gas-002/selfie', 'hi', { qos: 1 })
      await c.publishAsync('dev/gas-002/reading', JSON.stringify({ quantity: 'gas', value: 2 }), { qos: 1 })
      expect(c.connected).toBe(true)
      expect(await metric(/gateway_messages_rejected_total\{input="mqtt",code="GW_TOPIC_INVALID"\} (\d+)/)).toBeGreaterThanOrEqual(1)
    })
  })

  describeWith([MOSQUITTO_CLIENTS])('with Mosquitto\'s own clients as the third-party peer', () => {
    it('mosquitto_pub publishes a QoS 1 reading that lands in the outbox', async () => {
      const ts = Date.now()
      await run('mosquitto_pub', [
        '-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv311', '-q', '1',
        '-i', 'mosq-gas-002', '-u', 'gas-002', '-P', demoDevicePassword('gas-002'),
        '-t', 'dev/gas-002/reading', '-m', JSON.stringify({ ts, quantity: 'gas', value: 3.25 }),
      ])
      expect(gateway.outbox.peek(10_000).some((r) => r.body.includes(`"ts":${ts}`) && r.body.includes('3.25'))).toBe(true)
    })

    it('mosquitto_pub with a wrong password is refused', async () => {
      await expect(
        run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-q', '1', '-u', 'gas-002', '-P', 'wrong', '-t', 'dev/gas-002/reading', '-m', '{}']),
      ).rejects.toMatchObject({ code: expect.any(Number) })
    })

    it('mosquitto_sub on its own command topic receives the nack for a bad message', async () => {
      if (!hasBinary('mosquitto_sub')) throw new Error('mosquitto_sub missing')
      const sub = run('mosquitto_sub', [
        '-h', '127.0.0.1', '-p', String(port), '-q', '1', '-C', '1', '-W', '10',
        '-i', 'mosq-sub-phone', '-u', 'phone-001', '-P', demoDevicePassword('phone-001'), '-t', 'cmd/phone-001/#',
      ])
      // Wait until the subscription is in place before provoking the nack.
      await nextEvent<unknown>((listener) => {
        gateway.mqtt.broker!.aedes.on('subscribe', listener)
        return () => gateway.mqtt.broker!.aedes.off('subscribe', listener)
      }, (subs) => (subs as { topic: string }[]).some((s) => s.topic === 'cmd/phone-001/#'))
      const c = await connect(port, 'phone-001')
      await c.publishAsync('dev/phone-001/scan', 'not json', { qos: 1 })
      const { stdout } = await sub
      expect(JSON.parse(stdout)).toMatchObject({ code: 'GW_PAYLOAD_NOT_JSON', topic: 'dev/phone-001/scan' })
    })
  })
})
