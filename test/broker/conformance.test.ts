/**
 * MQTT 3.1.1 behaviour the broker owes any client, checked with MQTT.js and raw packets:
 * topic matching, retained messages, Wills, QoS 0/1/2, session present, clean versus persistent
 * sessions, and SUBACK failure codes. Runs in lab mode (anonymous, open ACL), as an interop
 * suite would; the ACL has its own tests in security.test.ts.
 */
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt'
import type { Packet } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import type { StandaloneBroker } from '../../broker/standalone.ts'
import { brokerMetric, connectAs, startTestBroker } from '../helpers/broker.ts'
import { RawMqtt } from '../helpers/raw-mqtt.ts'

interface Received {
  topic: string
  payload: string
  qos: number
  retain: boolean
}

describe('MQTT 3.1.1 conformance', () => {
  let broker: StandaloneBroker
  let url: string
  const clients: MqttClient[] = []
  let n = 0
  const client = async (extra: IClientOptions = {}) => {
    const c = await connectAs(url, undefined, { clientId: `conf-${n++}`, ...extra })
    clients.push(c)
    return c
  }

  beforeAll(async () => {
    broker = await startTestBroker({ settings: { allowAnonymous: true, ws: { host: '127.0.0.1', port: 0, path: '/mqtt' } } })
    url = `mqtt://127.0.0.1:${broker.broker.ports.tcp}`
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)))
    await broker.stop()
  })

  /** Everything `c` receives until a message on `sentinel`, which the caller then publishes. */
  function collectUntil(c: MqttClient, sentinel: string): Promise<Received[]> {
    const got: Received[] = []
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${sentinel}; got ${JSON.stringify(got)}`)), 5000)
      const onMessage = (topic: string, payload: Buffer, packet: { qos: number; retain: boolean }) => {
        if (topic === sentinel) {
          clearTimeout(timer)
          c.off('message', onMessage)
          resolve(got)
          return
        }
        got.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain })
      }
      c.on('message', onMessage)
    })
  }

  describe('topic matching', () => {
    const topics = ['a/b/c', 'a//c', 'a/b/c/d', 'a/c', 'a', 'a/b', 'b/a', '/x', '$SYS/test']
    it.each([
      ['a/+/c', ['a/b/c', 'a//c']],
      ['a/#', ['a/b/c', 'a//c', 'a/b/c/d', 'a/c', 'a', 'a/b']],
      ['+/+', ['a//c', 'a/c', 'a/b', 'b/a', '/x'].filter((t) => t.split('/').length === 2)],
      ['+', ['a']],
      // MQTT-4.7.2-1: wildcards at the first level do not match topics starting with $.
      ['#', topics.filter((t) => !t.startsWith('$'))],
      ['a/b/c', ['a/b/c']],
    ])('%s', async (filter, expected) => {
      const sub = await client()
      await sub.subscribeAsync([filter, 'end/of/test'], { qos: 1 })
      const received = collectUntil(sub, 'end/of/test')
      const pub = await client()
      for (const topic of topics) {
        // Clients may not publish to $ topics; the broker itself does ($SYS statistics).
        if (topic.startsWith('$')) await new Promise<void>((resolve) => broker.broker.aedes.publish({ cmd: 'publish', topic, payload: Buffer.from(topic), qos: 0, retain: false, dup: false }, () => resolve()))
        else await pub.publishAsync(topic, topic, { qos: 1 })
      }
      await pub.publishAsync('end/of/test', '', { qos: 1 })
      expect((await received).map((m) => m.topic).sort()).toEqual([...expected].sort())
    })

    it('$SYS/# gets the broker\'s own $SYS topics and nothing else', async () => {
      const sub = await client()
      await sub.subscribeAsync(['$SYS/#', 'end/of/test'], { qos: 1 })
      const received = collectUntil(sub, 'end/of/test')
      await new Promise<void>((resolve) =>
        broker.broker.aedes.publish({ cmd: 'publish', topic: '$SYS/test', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }, () => resolve()),
      )
      const pub = await client()
      for (const topic of ['a', 'a/b', 'SYS/x']) await pub.publishAsync(topic, topic, { qos: 1 })
      await pub.publishAsync('end/of/test', '', { qos: 1 })
      const topics = (await received).map((m) => m.topic)
      expect(topics).toContain('$SYS/test')
      // Aedes also reports connects there ($SYS/{id}/new/clients); every topic must be a $SYS one.
      expect(topics.filter((t) => !t.startsWith('$SYS/'))).toEqual([])
    })
  })

  describe('retained messages', () => {
    it('are kept per topic, replaced by a newer one, and cleared by an empty payload', async () => {
      const pub = await client()
      await pub.publishAsync('ret/a', 'one', { qos: 1, retain: true })
      await pub.publishAsync('ret/a', 'two', { qos: 1, retain: true })
      await pub.publishAsync('ret/b', 'bee', { qos: 0, retain: true })

      const first = await client()
      const got = collectUntil(first, 'ret/end')
      await first.subscribeAsync(['ret/#', 'ret/end'], { qos: 1 })
      await pub.publishAsync('ret/end', '', { qos: 1 })
      // Delivered on subscribe with the RETAIN flag set (MQTT-3.3.1-8); QoS is the lower of the two.
      expect((await got).sort((x, y) => x.topic.localeCompare(y.topic))).toEqual([
        { topic: 'ret/a', payload: 'two', qos: 1, retain: true },
        { topic: 'ret/b', payload: 'bee', qos: 0, retain: true },
      ])

      // A retained publish to a subscriber that is already there arrives without RETAIN (MQTT-3.3.1-9).
      const live = collectUntil(first, 'ret/end')
      await pub.publishAsync('ret/a', '', { qos: 1, retain: true })
      await pub.publishAsync('ret/end', '', { qos: 1 })
      expect(await live).toEqual([{ topic: 'ret/a', payload: '', qos: 1, retain: false }])

      const later = await client()
      const none = collectUntil(later, 'ret/end')
      await later.subscribeAsync(['ret/a', 'ret/end'], { qos: 1 })
      await pub.publishAsync('ret/end', '', { qos: 1 })
      expect(await none).toEqual([])
    })
  })

  describe('wills', () => {
    it('fire when the connection is lost, and not after a DISCONNECT', async () => {
      const watcher = await client()
      await watcher.subscribeAsync(['will/#', 'will/end'], { qos: 1 })
      const got = collectUntil(watcher, 'will/end')
      const lost = await client({ will: { topic: 'will/lost', payload: Buffer.from('gone'), qos: 1, retain: false } })
      const polite = await client({ will: { topic: 'will/polite', payload: Buffer.from('never'), qos: 1, retain: false } })
      await polite.endAsync()
      lost.stream.destroy()
      // The Will is published when the broker notices the lost socket; wait for it, then end.
      await new Promise<void>((resolve) => watcher.once('message', (topic) => topic === 'will/lost' && resolve()))
      const pub = await client()
      await pub.publishAsync('will/end', '', { qos: 1 })
      expect(await got).toEqual([{ topic: 'will/lost', payload: 'gone', qos: 1, retain: false }])
    })
  })

  describe('QoS', () => {
    it('overlapping subscriptions deliver one copy, at the highest QoS of those matching (MQTT-3.3.5-1)', async () => {
      const sub = await client()
      // The sentinel goes at QoS 2 as well: MQTT.js hands a QoS 2 message over at PUBREL, so a QoS 1
      // sentinel could overtake it.
      await sub.subscribeAsync({ 'over/#': { qos: 2 }, 'over/+': { qos: 1 }, 'over-end': { qos: 2 } })
      const got = collectUntil(sub, 'over-end')
      const pub = await client()
      await pub.publishAsync('over/c', 'both match', { qos: 2 })
      await pub.publishAsync('over-end', '', { qos: 2 })
      expect(await got).toEqual([{ topic: 'over/c', payload: 'both match', qos: 2, retain: false }])
    })

    it.each([
      [0, 2, 0],
      [1, 2, 1],
      [2, 2, 2],
      [2, 1, 1],
      [2, 0, 0],
    ] as const)('subscription QoS %i, publish QoS %i → delivered at QoS %i', async (subQos, pubQos, delivered) => {
      const topic = `qos/${subQos}/${pubQos}`
      const sub = await client()
      await sub.subscribeAsync([topic, 'qos/end'], { qos: subQos })
      const got = collectUntil(sub, 'qos/end')
      const pub = await client()
      // publishAsync resolves on PUBACK (QoS 1) or PUBCOMP (QoS 2): the whole flow completed.
      await pub.publishAsync(topic, 'x', { qos: pubQos })
      // The sentinel at the same QoS: MQTT orders messages per QoS level, not across levels (§4.6).
      await pub.publishAsync('qos/end', '', { qos: pubQos })
      expect(await got).toEqual([{ topic, payload: 'x', qos: delivered, retain: false }])
    })

    it.each([
      [{ 'ovl/#': 0, 'ovl/x': 2 }],
      [{ 'ovl/x': 2, 'ovl/#': 0 }],
      [{ 'ovl/+': 0, 'ovl/#': 2 }],
      [{ 'ovl/x': 0, 'ovl/#': 2 }],
      [{ 'ovl/#': 1, 'ovl/x': 2 }],
    ])('overlapping subscriptions %j: one copy at the highest granted QoS, whichever matched first', async (filters) => {
      const sub = await client()
      await sub.subscribeAsync({ ...Object.fromEntries(Object.entries(filters).map(([f, qos]) => [f, { qos: qos as 0 | 1 | 2 }])), 'ovl-end': { qos: 2 } })
      const got = collectUntil(sub, 'ovl-end')
      const pub = await client()
      await pub.publishAsync('ovl/x', 'm', { qos: 2 })
      await pub.publishAsync('ovl-end', '', { qos: 2 })
      expect((await got).map((m) => m.qos)).toEqual([Math.max(...Object.values(filters))])
      await sub.endAsync()
    })

    it('a wildcard subscription delivers at most its granted QoS, live and retained (MQTT-3.8.4-6)', async () => {
      const pub = await client()
      await pub.publishAsync('wq/kept', 'retained at 2', { qos: 2, retain: true })
      const sub = await client()
      const retained = collectUntil(sub, 'wq-end')
      await sub.subscribeAsync({ 'wq/+': { qos: 1 }, 'wq-end': { qos: 2 } })
      await pub.publishAsync('wq-end', '', { qos: 2 })
      expect(await retained).toEqual([{ topic: 'wq/kept', payload: 'retained at 2', qos: 1, retain: true }])

      const live = collectUntil(sub, 'wq-end')
      await pub.publishAsync('wq/live', 'at 2', { qos: 2 })
      await pub.publishAsync('wq-end', '', { qos: 2 })
      expect(await live).toEqual([{ topic: 'wq/live', payload: 'at 2', qos: 1, retain: false }])

      const zero = await client()
      const atZero = collectUntil(zero, 'wq-end')
      await zero.subscribeAsync({ 'wq/#': { qos: 0 }, 'wq-end': { qos: 2 } })
      await pub.publishAsync('wq-end', '', { qos: 2 })
      expect(await atZero).toEqual([{ topic: 'wq/kept', payload: 'retained at 2', qos: 0, retain: true }])
      await pub.publishAsync('wq/kept', '', { qos: 1, retain: true })
    })

    it('the publisher\'s DUP flag is not passed on (MQTT-3.3.1-3)', async () => {
      const port = broker.broker.ports.tcp!
      const sub = await RawMqtt.open(port)
      sub.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'conf-dup-sub', keepalive: 30 })
      await sub.next((p) => p.cmd === 'connack')
      sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'dup/+', qos: 1 }] })
      await sub.next((p) => p.cmd === 'suback')
      const pub = await RawMqtt.open(port)
      pub.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'conf-dup-pub', keepalive: 30 })
      await pub.next((p) => p.cmd === 'connack')
      pub.send({ cmd: 'publish', topic: 'dup/1', payload: Buffer.from('first try'), qos: 1, messageId: 5, dup: true, retain: false })
      await pub.next((p) => p.cmd === 'puback')
      pub.send({ cmd: 'publish', topic: 'dup/0', payload: Buffer.from('qos 0'), qos: 0, dup: false, retain: false })
      const at1 = (await sub.next((p) => p.cmd === 'publish' && (p as { topic: string }).topic === 'dup/1')) as Packet & { dup: boolean; messageId: number }
      const at0 = (await sub.next((p) => p.cmd === 'publish' && (p as { topic: string }).topic === 'dup/0')) as Packet & { dup: boolean }
      expect([at1.dup, at0.dup]).toEqual([false, false])
      sub.send({ cmd: 'puback', messageId: at1.messageId })
      sub.close()
      pub.close()
    })

    it('a QoS 2 message is delivered once even if the publisher resends it before PUBREL', async () => {
      const sub = await client()
      await sub.subscribeAsync(['q2/once', 'q2/end'], { qos: 2 })
      const got = collectUntil(sub, 'q2/end')
      const raw = await RawMqtt.open(broker.broker.ports.tcp!)
      raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'raw-q2', keepalive: 30 })
      await raw.next((p) => p.cmd === 'connack')
      const publish = { cmd: 'publish', topic: 'q2/once', payload: Buffer.from('once'), qos: 2, messageId: 7, retain: false, dup: false } as const
      raw.send(publish)
      await raw.next((p) => p.cmd === 'pubrec')
      raw.send({ ...publish, dup: true })
      raw.send({ cmd: 'pubrel', messageId: 7 })
      await raw.next((p) => p.cmd === 'pubcomp')
      raw.close()
      const pub = await client()
      await pub.publishAsync('q2/end', '', { qos: 2 })
      expect((await got).map((m) => m.payload)).toEqual(['once'])
    })
  })

  describe('sessions', () => {
    // A stored session counts with or without subscriptions (MQTT-3.2.2-2, §3.1.2.4).
    it.each([
      ['with a subscription', 'conf-session', true],
      ['without subscriptions', 'conf-session-empty', false],
    ])('session present follows the clean flag, for a session %s', async (_what, id, subscribe) => {
      const present = async (clean: boolean) => {
        const c = await connectAs(url, undefined, { clientId: id, clean })
        // connectAsync has resolved after CONNACK; MQTT.js keeps the last CONNACK on the client.
        const sp = Boolean((c as unknown as { connackPacket?: { sessionPresent?: boolean } }).connackPacket?.sessionPresent)
        if (!clean && subscribe) await c.subscribeAsync('sess/x', { qos: 1 })
        await c.endAsync()
        return sp
      }
      expect(await present(false)).toBe(false)
      expect(await present(false)).toBe(true)
      expect(await present(true)).toBe(false)
      // The clean connect discarded the session (MQTT-3.1.2-6).
      expect(await present(false)).toBe(false)
    })

    it('a QoS 1 message sent but not acknowledged comes again on resume with DUP set and its packet id (MQTT-3.3.1-1, 4.4.0-1)', async () => {
      const port = broker.broker.ports.tcp!
      const first = await RawMqtt.open(port)
      first.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, clientId: 'conf-redeliver', keepalive: 30 })
      await first.next((p) => p.cmd === 'connack')
      first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'redeliver/x', qos: 1 }] })
      await first.next((p) => p.cmd === 'suback')
      const pub = await client()
      await pub.publishAsync('redeliver/x', 'again', { qos: 1 })
      const sent = (await first.next((p) => p.cmd === 'publish')) as Packet & { messageId: number; dup: boolean }
      expect(sent.dup).toBe(false)
      // Gone without a PUBACK.
      const gone = new Promise<void>((resolve) => first.socket.once('close', () => resolve()))
      first.close()
      await gone

      const back = await RawMqtt.open(port)
      back.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, clientId: 'conf-redeliver', keepalive: 30 })
      const again = (await back.next((p) => p.cmd === 'publish')) as Packet & { messageId: number; dup: boolean; payload: Buffer }
      expect({ id: again.messageId, dup: again.dup, payload: again.payload.toString() }).toEqual({ id: sent.messageId, dup: true, payload: 'again' })
      back.send({ cmd: 'puback', messageId: again.messageId })
      back.send({ cmd: 'disconnect' })
      back.close()
    })

    it('an empty client id is accepted only with a clean session (MQTT-3.1.3-8), and never in MQTT 3.1', async () => {
      const port = broker.broker.ports.tcp!
      const attempt = async (protocolId: 'MQTT' | 'MQIsdp', protocolVersion: 3 | 4, clean: boolean) => {
        const raw = await RawMqtt.open(port)
        const closed = new Promise<void>((resolve) => raw.socket.once('close', () => resolve()))
        // By hand: mqtt-packet refuses to encode what these clients send.
        const name = Buffer.from(protocolId)
        const variable = Buffer.concat([Buffer.from([0, name.length]), name, Buffer.from([protocolVersion, clean ? 0x02 : 0x00, 0, 30])])
        const body = Buffer.concat([variable, Buffer.from([0, 0])]) // client id: zero bytes
        raw.socket.write(Buffer.concat([Buffer.from([0x10, body.length]), body]))
        const { returnCode } = (await raw.next((p) => p.cmd === 'connack')) as { returnCode: number }
        return { returnCode, raw, closed }
      }
      // Refused with 2 (identifier rejected), and the server closes the connection.
      for (const [protocolId, version, clean] of [['MQTT', 4, false], ['MQIsdp', 3, true], ['MQIsdp', 3, false]] as const) {
        const refused = await attempt(protocolId, version, clean)
        expect(refused.returnCode, `${protocolId} ${version} clean=${clean}`).toBe(2)
        await refused.closed
      }
      // With a clean session the server names the session, and it works.
      const named = await attempt('MQTT', 4, true)
      expect(named.returnCode).toBe(0)
      named.raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'anon/echo', qos: 1 }] })
      expect(await named.raw.next((p) => p.cmd === 'suback')).toMatchObject({ granted: [1] })
      named.raw.close()
    })

    it('what a persistent session queued while offline comes at most at the QoS its subscription was granted (MQTT-3.8.4-6)', async () => {
      const away = await connectAs(url, undefined, { clientId: 'conf-offline-qos', clean: false })
      await away.subscribeAsync('offq/+', { qos: 1 })
      await away.endAsync()
      const pub = await client()
      await pub.publishAsync('offq/a', 'published at 2', { qos: 2 })
      const back = mqtt.connect(url, { clientId: 'conf-offline-qos', clean: false, reconnectPeriod: 0 })
      const got = new Promise<{ payload: string; qos: number }>((resolve) => back.once('message', (_t, p, packet) => resolve({ payload: p.toString(), qos: packet.qos })))
      expect(await got).toEqual({ payload: 'published at 2', qos: 1 })
      await back.endAsync()
    })

    it('a persistent session queues QoS 1 while offline; a clean one does not', async () => {
      const persistent = await connectAs(url, undefined, { clientId: 'conf-persistent', clean: false })
      await persistent.subscribeAsync('queue/q', { qos: 1 })
      await persistent.endAsync()
      const clean = await connectAs(url, undefined, { clientId: 'conf-clean', clean: true })
      await clean.subscribeAsync('queue/q', { qos: 1 })
      await clean.endAsync()

      const pub = await client()
      await pub.publishAsync('queue/q', 'while away', { qos: 1 })

      // Listen before the CONNACK: the queued message follows it at once.
      const back = mqtt.connect(url, { clientId: 'conf-persistent', clean: false, reconnectPeriod: 0 })
      const got = new Promise<string>((resolve) => back.once('message', (_t, p) => resolve(p.toString())))
      expect(await got).toBe('while away')
      await back.endAsync()

      const cleanBack = await client({ clientId: 'conf-clean', clean: true })
      await cleanBack.subscribeAsync('queue/end', { qos: 1 })
      const nothing = collectUntil(cleanBack, 'queue/end')
      await pub.publishAsync('queue/end', '', { qos: 1 })
      expect(await nothing).toEqual([])
    })
  })

  describe('subscribe failures', () => {
    // A refused filter beside a granted one (SUBACK 0x80) is in security.test.ts, where the ACL refuses.
    it('a malformed filter (# not last, MQTT-4.7.1-2) closes the connection, as MQTT-4.8.0-1 requires', async () => {
      const raw = await RawMqtt.open(broker.broker.ports.tcp!)
      raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'raw-sub', keepalive: 30 })
      await raw.next((p) => p.cmd === 'connack')
      const closed = new Promise<void>((resolve) => raw.socket.once('close', () => resolve()))
      raw.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'bad/#/more', qos: 1 }] })
      await closed
      expect(raw.received.some((p) => p.cmd === 'suback')).toBe(false)
      // The broker is fine: the next client is served.
      const c = await client()
      expect((await c.subscribeAsync('ok/+', { qos: 1 })).map((g) => g.qos)).toEqual([1])
    })
  })
  describe('malformed packets close the connection (MQTT-4.8.0-1)', () => {
    const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff])
    const str = (text: string | Buffer) => {
      const bytes = typeof text === 'string' ? Buffer.from(text) : text
      return Buffer.concat([u16(bytes.length), bytes])
    }
    /** A packet by hand (remaining length under 128 here): mqtt-packet will not encode these. */
    const packet = (first: number, ...parts: Buffer[]) => {
      const body = Buffer.concat(parts)
      return Buffer.concat([Buffer.from([first, body.length]), body])
    }
    const connect = (clientId: string | Buffer, { level = 4, flags = 0x02, will }: { level?: number; flags?: number; will?: [string, string] } = {}) =>
      packet(0x10, str('MQTT'), Buffer.from([level, flags]), u16(30), str(clientId), ...(will ? [str(will[0]), str(will[1])] : []))

    /** Sends `bytes` (after a CONNECT that is accepted, if `afterConnect`), then waits for the broker to close. */
    async function closedAfter(bytes: Buffer, afterConnect = false): Promise<Packet[]> {
      const raw = await RawMqtt.open(broker.broker.ports.tcp!)
      const closed = new Promise<void>((resolve) => raw.socket.once('close', () => resolve()))
      if (afterConnect) {
        raw.socket.write(connect(`conf-bad-${n++}`))
        const connack = (await raw.next((p) => p.cmd === 'connack')) as Packet & { returnCode: number }
        expect(connack.returnCode).toBe(0)
      }
      raw.socket.write(bytes)
      await closed
      return raw.received.filter((p) => p.cmd !== 'connack' || !afterConnect)
    }

    it('an unsupported protocol level gets CONNACK 1, then the close (MQTT-3.1.2-2)', async () => {
      for (const level of [0, 2, 6, 7]) {
        const got = await closedAfter(connect(`conf-level-${level}`, { level }))
        expect(got, `level ${level}`).toMatchObject([{ cmd: 'connack', returnCode: 1 }])
      }
    })

    it.each([
      ['a Will QoS of 3 (MQTT-3.1.2-14)', connect('conf-will-qos3', { flags: 0x02 | 0x04 | 0x18, will: ['will/x', 'gone'] })],
      ['a client id with U+0000 (MQTT-1.5.3-2)', connect('conf\u0000nul')],
      ['a client id of ill-formed UTF-8 (MQTT-1.5.3-1)', connect(Buffer.from([0x63, 0xff, 0xfe]))],
    ])('CONNECT with %s: closed without a CONNACK', async (_what, bytes) => {
      expect(await closedAfter(bytes)).toEqual([])
    })

    it.each([
      ['SUBSCRIBE with packet id 0 (MQTT-2.3.1-1)', packet(0x82, u16(0), str('ok/a'), Buffer.from([1]))],
      ['UNSUBSCRIBE with packet id 0 (MQTT-2.3.1-1)', packet(0xa2, u16(0), str('ok/a'))],
      ['PUBLISH at QoS 1 with packet id 0 (MQTT-2.3.1-1)', packet(0x32, str('ok/a'), u16(0), Buffer.from('x'))],
      ['UNSUBSCRIBE without a topic filter (MQTT-3.10.3-2)', packet(0xa2, u16(5))],
      ['SUBSCRIBE to a filter with U+0000 (MQTT-4.7.3-2)', packet(0x82, u16(6), str('ok/\u0000'), Buffer.from([1]))],
      ['SUBSCRIBE to a filter of ill-formed UTF-8 (MQTT-1.5.3-1)', packet(0x82, u16(7), str(Buffer.from([0x61, 0x2f, 0xff])), Buffer.from([1]))],
    ])('%s: closed without an answer', async (_what, bytes) => {
      expect(await closedAfter(bytes, true)).toEqual([])
    })

    it('SUBSCRIBE naming one filter twice gets a return code for each (MQTT-3.8.4-5)', async () => {
      const raw = await RawMqtt.open(broker.broker.ports.tcp!)
      raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'conf-twice', keepalive: 30 })
      await raw.next((p) => p.cmd === 'connack')
      raw.send({ cmd: 'subscribe', messageId: 9, subscriptions: [{ topic: 'twice/a', qos: 0 }, { topic: 'other/b', qos: 2 }, { topic: 'twice/a', qos: 1 }] })
      expect(await raw.next((p) => p.cmd === 'suback')).toMatchObject({ messageId: 9, granted: [0, 2, 1] })
      raw.close()
    })
  })

  describe('MQTT over WebSocket', () => {
    const wsUrl = () => `ws://127.0.0.1:${broker.broker.ports.ws}/mqtt`
    const CONNECT = Buffer.from([0x10, 0x10, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 30, 0, 4, 0x77, 0x73, 0x2d, 0x31])

    it('answers the mqtt subprotocol, and refuses an upgrade that offers no MQTT one (MQTT-6.0.0-4)', async () => {
      const protocol = async (offered: string[]) => {
        const socket = new WebSocket(wsUrl(), offered)
        return new Promise<string | number>((resolve) => {
          socket.once('open', () => (resolve(socket.protocol), socket.close()))
          socket.on('error', () => {})
          socket.once('unexpected-response', (req, res) => (resolve(res.statusCode ?? 0), req.destroy()))
        })
      }
      expect(await protocol(['mqtt'])).toBe('mqtt')
      expect(await protocol(['foo', 'mqtt'])).toBe('mqtt')
      expect(await protocol(['mqttv3.1'])).toBe('mqttv3.1')
      expect(await protocol(['foo'])).toBe(400)
    })

    it('a CONNECT in a text frame closes the connection without a CONNACK (MQTT-6.0.0-1); in a binary one it is answered', async () => {
      const exchange = async (binary: boolean) => {
        const socket = new WebSocket(wsUrl(), ['mqtt'])
        await new Promise((resolve) => socket.once('open', resolve))
        const frames: Buffer[] = []
        socket.on('message', (data) => frames.push(data as Buffer))
        const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
        socket.send(CONNECT, { binary })
        // Further text frames already on their way count nothing more: one connection, one close.
        if (!binary) for (let i = 0; i < 3; i++) socket.send(CONNECT, { binary })
        if (binary) {
          await new Promise((resolve) => socket.once('message', resolve))
          socket.close()
        }
        await closed
        return frames
      }
      const before = await brokerMetric(broker, 'broker_forced_disconnects_total', 'reason="protocol_violation"')
      expect(await exchange(false)).toEqual([])
      expect(await brokerMetric(broker, 'broker_forced_disconnects_total', 'reason="protocol_violation"')).toBe(before + 1)
      // The CONNACK, in one frame: what the broker writes in one turn leaves as one frame.
      expect(await exchange(true)).toEqual([Buffer.from([0x20, 2, 0, 0])])
    })
  })
})
