/**
 * The broker as a device, a gateway and an attacker see it: every listener with MQTT.js and with
 * Mosquitto's own clients, client certificates, and the auth and ACL refusal matrix. Every
 * refusal must be refused, counted and logged, and no password may appear in any log line.
 */
import { execFile } from 'node:child_process'
import { get as httpsGet } from 'node:https'
import { connect as tcpConnect } from 'node:net'
import { promisify } from 'node:util'
import { readFileSync } from 'node:fs'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StandaloneBroker } from '../../broker/standalone.ts'
import { MOSQUITTO_CLIENTS, describeWith } from '../helpers/binaries.ts'
import { brokerMetric, connectAs, GATEWAY_ID, passwordOf, PASSWORD_DEVICES, startTestBroker } from '../helpers/broker.ts'
import { makeTestPki, OPENSSL, type TestPki } from '../helpers/certs.ts'
import { mosquittoSub } from '../helpers/mosquitto.ts'
import { capturingLogger } from '../helpers/stack.ts'
import { nextEvent, waitFor } from '../helpers/wait.ts'

const run = promisify(execFile)
const describeTls = describeWith([OPENSSL, MOSQUITTO_CLIENTS])

describeTls('broker security and interop', () => {
  let pki: TestPki
  let broker: StandaloneBroker
  let tcp: string
  let tls: string
  let ws: string
  const { logger, lines } = capturingLogger('broker')
  const clients: MqttClient[] = []
  const track = (c: MqttClient) => (clients.push(c), c)
  const metric = (name: string, labels: string) => brokerMetric(broker, name, labels)
  const tlsOptions = () => ({ ca: readFileSync(pki.ca), servername: 'localhost' })

  beforeAll(async () => {
    pki = makeTestPki([{ name: 'cam-009' }, { name: 'san-only', subject: '/CN=unrelated-name', san: 'DNS:gas-002' }])
    broker = await startTestBroker({
      logger,
      settings: {
        tls: { host: '127.0.0.1', port: 0, cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, clientCertificates: 'optional' },
        ws: { host: '127.0.0.1', port: 0, path: '/mqtt' },
      },
    })
    tcp = `mqtt://127.0.0.1:${broker.broker.ports.tcp}`
    tls = `mqtts://localhost:${broker.broker.ports.tls}`
    ws = `ws://127.0.0.1:${broker.broker.ports.ws}/mqtt`
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)))
    await broker?.stop()
    // No secret in any line the broker wrote during the whole suite.
    const all = lines.join('\n')
    for (const id of [...PASSWORD_DEVICES, GATEWAY_ID]) expect(all).not.toContain(passwordOf(id))
  })

  /** A gateway-role subscriber on `filter`, and the next message it gets. */
  async function listen(filter: string) {
    const gw = track(await connectAs(tcp, GATEWAY_ID))
    await gw.subscribeAsync(filter, { qos: 1 })
    return (match: (topic: string) => boolean = () => true) =>
      nextEvent<[string, Buffer]>((l) => {
        const h = (topic: string, payload: Buffer) => l([topic, payload])
        gw.on('message', h)
        return () => gw.off('message', h)
      }, ([t]) => match(t))
  }

  describe('MQTT.js on every listener', () => {
    it.each([
      ['tcp', () => tcp, {}],
      ['tls', () => tls, 'tls'],
      ['ws', () => ws, {}],
    ] as const)('publishes and receives over %s, counted on that listener', async (listener, url, extra) => {
      const next = await listen('dev/gas-001/#')
      const before = await metric('broker_messages_in_total', `listener="${listener}"`)
      const dev = track(await connectAs(url(), 'gas-001', extra === 'tls' ? tlsOptions() : {}))
      const got = next()
      await dev.publishAsync('dev/gas-001/reading', `{"via":"${listener}"}`, { qos: 1 })
      const [topic, payload] = await got
      expect(topic).toBe('dev/gas-001/reading')
      expect(payload.toString()).toBe(`{"via":"${listener}"}`)
      expect(await metric('broker_messages_in_total', `listener="${listener}"`)).toBe(before + 1)
    })

    it('MQTT 5 is a documented gap: Aedes 1.2 answers CONNACK 1 (unacceptable protocol version)', async () => {
      // docs/broker.md, "MQTT versions". If Aedes gains MQTT 5, this fails and the doc must change.
      await expect(connectAs(tcp, 'phone-001', { protocolVersion: 5 })).rejects.toMatchObject({ code: 1 })
      const v31 = track(await connectAs(tcp, 'phone-001', { protocolVersion: 3, protocolId: 'MQIsdp' }))
      expect(v31.connected).toBe(true)
    })
  })

  describe('Mosquitto clients as the third-party peer', () => {
    it('mosquitto_sub and mosquitto_pub with passwords over TCP', async () => {
      const sub = mosquittoSub(broker.broker.aedes, ['-h', '127.0.0.1', '-p', String(broker.broker.ports.tcp), '-u', 'phone-001', '-P', passwordOf('phone-001'), '-q', '1', '-t', 'cmd/phone-001/#'])
      await sub.subscribed
      await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.broker.ports.tcp), '-u', GATEWAY_ID, '-P', passwordOf(GATEWAY_ID), '-q', '1', '-t', 'cmd/phone-001/task', '-m', 'walk route R1'])
      expect(await sub.messages).toEqual(['walk route R1'])
    })

    it('mosquitto_sub and mosquitto_pub with passwords over TLS', async () => {
      const common = ['-h', 'localhost', '-p', String(broker.broker.ports.tls), '--cafile', pki.ca, '-q', '1']
      const sub = mosquittoSub(broker.broker.aedes, [...common, '-u', 'phone-001', '-P', passwordOf('phone-001'), '-t', 'cmd/phone-001/#'])
      await sub.subscribed
      await run('mosquitto_pub', [...common, '-u', GATEWAY_ID, '-P', passwordOf(GATEWAY_ID), '-t', 'cmd/phone-001/task', '-m', 'over tls'])
      expect(await sub.messages).toEqual(['over tls'])
    })

    it('mosquitto_pub with a client certificate and no password: the CN names the device', async () => {
      const next = await listen('dev/cam-009/#')
      const got = next()
      const cert = pki.client('cam-009')
      await run('mosquitto_pub', ['-h', 'localhost', '-p', String(broker.broker.ports.tls), '--cafile', pki.ca, '--cert', cert.cert, '--key', cert.key, '-q', '1', '-t', 'dev/cam-009/camera', '-m', '{"event":"intrusion"}'])
      expect((await got)[1].toString()).toBe('{"event":"intrusion"}')
    })

    it('a certificate naming the device only in its SAN works, and binds the device to that name', async () => {
      const cert = pki.client('san-only')
      const args = ['-h', 'localhost', '-p', String(broker.broker.ports.tls), '--cafile', pki.ca, '--cert', cert.cert, '--key', cert.key, '-q', '1']
      const next = await listen('dev/gas-002/#')
      const got = next()
      await run('mosquitto_pub', [...args, '-t', 'dev/gas-002/reading', '-m', '{"v":1}'])
      expect((await got)[1].toString()).toBe('{"v":1}')
      // The certificate says gas-002; claiming to be gas-001 with it is refused.
      await expect(run('mosquitto_pub', [...args, '-u', 'gas-001', '-t', 'dev/gas-001/reading', '-m', '{}'])).rejects.toThrow()
      expect(await metric('broker_auth_failures_total', 'reason="certificate_mismatch"')).toBeGreaterThanOrEqual(1)
    })

    it('a certificate from a CA the office does not trust identifies nobody', async () => {
      await expect(
        run('mosquitto_pub', ['-h', 'localhost', '-p', String(broker.broker.ports.tls), '--cafile', pki.ca, '--cert', pki.rogue.cert, '--key', pki.rogue.key, '-q', '1', '-t', 'dev/gas-001/reading', '-m', '{}']),
      ).rejects.toThrow()
      expect(await metric('broker_auth_failures_total', 'reason="anonymous"')).toBeGreaterThanOrEqual(1)
    })
  })

  describe('refusal matrix', () => {
    const refusedConnect = async (url: string, options: object) => {
      const err = await connectAs(url, undefined, options).then(
        (c) => (track(c), undefined),
        (e: { code?: number }) => e,
      )
      expect(err).toBeDefined()
      return err!.code
    }

    it('a wrong password: CONNACK 4, counted, logged', async () => {
      const before = await metric('broker_auth_failures_total', 'reason="bad_password"')
      expect(await refusedConnect(tcp, { username: 'gas-001', password: 'not-the-password' })).toBe(4)
      expect(await metric('broker_auth_failures_total', 'reason="bad_password"')).toBe(before + 1)
      expect(lines.some((l) => l.includes('BROKER_AUTH_REFUSED') && l.includes('bad_password'))).toBe(true)
      expect(lines.join('\n')).not.toContain('not-the-password')
    })

    it('an unknown device: CONNACK 4, counted, logged', async () => {
      const before = await metric('broker_auth_failures_total', 'reason="unknown_device"')
      expect(await refusedConnect(tcp, { username: 'gas-999', password: 'whatever-it-is' })).toBe(4)
      expect(await metric('broker_auth_failures_total', 'reason="unknown_device"')).toBe(before + 1)
      expect(lines.some((l) => l.includes('BROKER_AUTH_REFUSED') && l.includes('gas-999'))).toBe(true)
    })

    it('anonymous: CONNACK 5, counted, logged', async () => {
      const before = await metric('broker_auth_failures_total', 'reason="anonymous"')
      expect(await refusedConnect(tcp, {})).toBe(5)
      expect(await metric('broker_auth_failures_total', 'reason="anonymous"')).toBe(before + 1)
    })

    it.each([
      ['another device\'s topic', 'dev/gas-002/reading', false, 'publish'],
      ['a $SYS topic', '$SYS/broker/clients', false, 'publish'],
      ['another device\'s topic, retained', 'dev/gas-002/status', true, 'retain'],
    ] as const)('a publish to %s: disconnected, counted, logged', async (_what, topic, retain, action) => {
      const before = await metric('broker_acl_denied_total', `action="${action}"`)
      const dev = track(await connectAs(tcp, 'gas-001'))
      const closed = new Promise<void>((resolve) => dev.once('close', () => resolve()))
      dev.publish(topic, 'intruder', { qos: 1, retain })
      await closed
      expect(await metric('broker_acl_denied_total', `action="${action}"`)).toBe(before + 1)
      expect(lines.some((l) => l.includes('BROKER_PUBLISH_DENIED') && l.includes(topic))).toBe(true)
    })

    it('a refused retained message is not kept for later subscribers', async () => {
      const gw = track(await connectAs(tcp, GATEWAY_ID))
      let retained = 0
      gw.on('message', (_t, _p, packet) => (retained += packet.retain ? 1 : 0))
      // Own topic, so a retained message would arrive; then the one refused above must not.
      const own = track(await connectAs(tcp, 'gas-002'))
      await own.publishAsync('dev/gas-002/config', 'mine', { qos: 1, retain: true })
      const got = nextEvent<Buffer>((l) => {
        const h = (_t: string, p: Buffer) => l(p)
        gw.on('message', h)
        return () => gw.off('message', h)
      })
      await gw.subscribeAsync('dev/gas-002/#', { qos: 1 })
      expect((await got).toString()).toBe('mine')
      await gw.subscribeAsync('dev/gas-002/status', { qos: 1 })
      expect(retained).toBe(1)
    })

    it('a subscription to another device\'s commands: SUBACK 0x80, counted, logged', async () => {
      const before = await metric('broker_acl_denied_total', 'action="subscribe"')
      const dev = track(await connectAs(tcp, 'phone-001'))
      // MQTT.js rejects the whole call when any filter is refused, carrying the SUBACK.
      const codes = await dev.subscribeAsync(['cmd/phone-001/#', 'cmd/gas-001/#'], { qos: 1 }).then(
        () => undefined,
        (err: { packet?: { granted: number[] } }) => err.packet?.granted,
      )
      expect(codes).toEqual([1, 0x80])
      expect(dev.connected).toBe(true)
      expect(await metric('broker_acl_denied_total', 'action="subscribe"')).toBe(before + 1)
      expect(lines.some((l) => l.includes('BROKER_SUBSCRIBE_DENIED') && l.includes('cmd/gas-001/#'))).toBe(true)
    })

    it('a Will on another device\'s topic: CONNACK 5, counted, logged', async () => {
      const before = await metric('broker_acl_denied_total', 'action="will"')
      const err = await connectAs(tcp, 'gas-001', { will: { topic: 'dev/gas-002/status', payload: Buffer.from('x'), qos: 1, retain: false } }).then(
        (c) => (track(c), undefined),
        (e: { code?: number }) => e,
      )
      expect(err?.code).toBe(5)
      expect(await metric('broker_acl_denied_total', 'action="will"')).toBe(before + 1)
      expect(lines.some((l) => l.includes('will_topic_denied'))).toBe(true)
    })

    it('plain TCP on the TLS port: the handshake fails, counted and logged', async () => {
      const before = await metric('broker_connections_refused_total', 'listener="tls",reason="tls_handshake"')
      const socket = tcpConnect(broker.broker.ports.tls!, '127.0.0.1')
      // A valid MQTT CONNECT, but not TLS.
      socket.write(Buffer.from('101000044d5154540402003c0004746573740000', 'hex'))
      await new Promise<void>((resolve) => socket.once('close', () => resolve()))
      await waitFor(async () => ((await metric('broker_connections_refused_total', 'listener="tls",reason="tls_handshake"')) > before ? true : undefined))
      expect(lines.some((l) => l.includes('BROKER_TLS_REFUSED'))).toBe(true)
    })
  })
})

describeTls('mutual TLS required', () => {
  it('refuses a client without a certificate at the handshake and admits one with', async () => {
    const pki = makeTestPki([{ name: 'cam-009' }])
    const broker = await startTestBroker({
      settings: { tcp: null, tls: { host: '127.0.0.1', port: 0, cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, clientCertificates: 'required' } },
    })
    try {
      const url = `mqtts://localhost:${broker.broker.ports.tls}`
      await expect(connectAs(url, 'gas-001', { ca: readFileSync(pki.ca) })).rejects.toThrow()
      const cert = pki.client('cam-009')
      const dev = await connectAs(url, undefined, { ca: readFileSync(pki.ca), cert: readFileSync(cert.cert), key: readFileSync(cert.key) })
      await dev.publishAsync('dev/cam-009/status', '{"state":"online"}', { qos: 1 })
      await dev.endAsync()
    } finally {
      await broker.stop()
    }
  })
})

describeTls('WebSocket over TLS', () => {
  it('serves MQTT over wss:// and counts it on the ws listener', async () => {
    const pki = makeTestPki([])
    const broker = await startTestBroker({
      settings: { tcp: null, ws: { host: '127.0.0.1', port: 0, path: '/mqtt', tls: { cert: pki.serverCert, key: pki.serverKey } } },
      http: { host: '127.0.0.1', port: 0, tls: { cert: pki.serverCert, key: pki.serverKey } },
    })
    try {
      const dev = await connectAs(`wss://localhost:${broker.broker.ports.ws}/mqtt`, 'gas-001', { ca: readFileSync(pki.ca) })
      await dev.publishAsync('dev/gas-001/reading', '{}', { qos: 1 })
      await dev.endAsync()
      expect(/^broker_messages_in_total\{listener="ws"\} 1$/m.test(await broker.metrics.metrics())).toBe(true)
      // The metrics endpoint speaks HTTPS too.
      const health = await new Promise<number>((resolve, reject) =>
        httpsGet({ host: 'localhost', port: broker.httpPort, path: '/healthz', ca: readFileSync(pki.ca) }, (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        }).on('error', reject),
      )
      expect(health).toBe(200)
      // Plain ws:// to the wss:// port is not MQTT to it.
      await expect(connectAs(`ws://127.0.0.1:${broker.broker.ports.ws}/mqtt`, 'gas-001')).rejects.toThrow()
    } finally {
      await broker.stop()
    }
  })
})

describeTls('connection limits before the TLS handshake and the WebSocket upgrade', () => {
  it('counts sockets that never finish either against the cap and the per-address rate, and logs refusals once per address', async () => {
    const pki = makeTestPki([])
    const { logger, lines } = capturingLogger('broker')
    const broker = await startTestBroker({
      logger,
      settings: {
        tcp: null,
        tls: { host: '127.0.0.1', port: 0, cert: pki.serverCert, key: pki.serverKey, clientCertificates: 'off' },
        ws: { host: '127.0.0.1', port: 0, path: '/mqtt' },
        limits: { maxConnections: 5, connectsPerSecondPerAddress: 1000 },
      },
    })
    const open: ReturnType<typeof tcpConnect>[] = []
    const metric = async (labels: string) => Number(new RegExp(`^broker_connections_refused_total\\{${labels}\\} (\\d+)`, 'm').exec(await broker.metrics.metrics())?.[1] ?? 0)
    try {
      // 40 raw sockets that send nothing, to each port: no handshake, no upgrade request.
      const closed = { tls: 0, ws: 0 }
      for (const listener of ['tls', 'ws'] as const) {
        for (let i = 0; i < 40; i++) {
          const s = tcpConnect(broker.broker.ports[listener]!, '127.0.0.1')
          s.on('error', () => {})
          s.on('close', () => closed[listener]++)
          open.push(s)
        }
      }
      await waitFor(() => (closed.tls + closed.ws >= 75 ? true : undefined), { what: 'refused sockets closed' })
      expect(closed.tls + closed.ws).toBe(75)
      expect((await metric('listener="tls",reason="max_connections"')) + (await metric('listener="ws",reason="max_connections"'))).toBe(75)
      // Refused by the gate, not failed handshakes.
      expect(await metric('listener="tls",reason="tls_handshake"')).toBe(0)
      expect(lines.some((l) => l.includes('BROKER_TLS_REFUSED'))).toBe(false)
      // One log line per listener and address (with the rest held back), not one per socket.
      expect(lines.filter((l) => l.includes('BROKER_CONNECTION_REFUSED')).length).toBe(2)
    } finally {
      for (const s of open) s.destroy()
      await broker.stop()
    }
  })

  it('refuses a flood from one address at the connect rate before any handshake', async () => {
    const pki = makeTestPki([])
    const broker = await startTestBroker({
      settings: { tcp: null, tls: { host: '127.0.0.1', port: 0, cert: pki.serverCert, key: pki.serverKey, clientCertificates: 'off' }, limits: { connectsPerSecondPerAddress: 2 } },
    })
    const open: ReturnType<typeof tcpConnect>[] = []
    try {
      let closed = 0
      for (let i = 0; i < 30; i++) {
        const s = tcpConnect(broker.broker.ports.tls!, '127.0.0.1')
        s.on('error', () => {})
        s.on('close', () => closed++)
        open.push(s)
      }
      // The bucket holds 5 (its floor); the other 25 go at once, well before any handshake timeout.
      await waitFor(() => (closed >= 25 ? true : undefined), { what: 'rate-refused sockets closed', timeoutMs: 3000 })
      expect(closed).toBeGreaterThanOrEqual(25)
      expect(closed).toBeLessThanOrEqual(26)
    } finally {
      for (const s of open) s.destroy()
      await broker.stop()
    }
  })
})
