/**
 * A persistent session belongs to the identity that made it: what it queued while its client was
 * away reaches only a client that may read it, whatever filters were asked for and whoever
 * resumes it.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import mqtt, { type MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StandaloneBroker } from '../../broker/standalone.ts'
import { brokerMetric, connectAs, GATEWAY_ID, passwordOf, queuedOnDisk, startTestBroker } from '../helpers/broker.ts'
import { capturingLogger } from '../helpers/stack.ts'
import { nextEvent, waitFor } from '../helpers/wait.ts'
import { removeTestDir } from '../helpers/temp.ts'

describe('persistent sessions and the topic ACL', () => {
  let broker: StandaloneBroker
  let tcp: string
  const { logger, lines } = capturingLogger('broker')
  const clients: MqttClient[] = []
  const track = (c: MqttClient) => (clients.push(c), c)
  const metric = (name: string, labels: string) => brokerMetric(broker, name, labels)

  beforeAll(async () => {
    broker = await startTestBroker({ logger })
    tcp = `mqtt://127.0.0.1:${broker.broker.ports.tcp}`
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)))
    await broker?.stop()
  })

  /** A client not yet connected, so that a listener is in place before its session's queue arrives. */
  const unconnected = (id: string, clientId: string) =>
    track(mqtt.connect(tcp, { clientId, clean: false, username: id, password: passwordOf(id), reconnectPeriod: 0, manualConnect: true }))

  /** Everything `client` receives until a message on `sentinel` arrives (which must be its own). */
  function collectUntil(client: MqttClient, sentinel: string): Promise<string[]> {
    const got: string[] = []
    return nextEvent<string>((l) => {
      const h = (topic: string, payload: Buffer) => {
        got.push(`${topic} ${payload.toString()}`)
        l(topic)
      }
      client.on('message', h)
      return () => client.off('message', h)
    }, (t) => t === sentinel).then(() => got)
  }

  it('a refused filter is not kept in the session: nothing it matches is queued or delivered on resume', async () => {
    const clientId = 'gas-001-persistent'
    const dev = await connectAs(tcp, 'gas-001', { clientId, clean: false })
    const granted = await dev.subscribeAsync(['cmd/gas-001/#', '#', 'cmd/gas-002/#'], { qos: 1 }).then(
      () => undefined,
      (err: { packet?: { granted: number[] } }) => err.packet?.granted,
    )
    expect(granted).toEqual([1, 0x80, 0x80])
    await dev.endAsync()

    // While it is away: commands for another device, other devices' data, and one of its own.
    const gateway = track(await connectAs(tcp, GATEWAY_ID))
    const other = track(await connectAs(tcp, 'gas-002'))
    await gateway.publishAsync('cmd/gas-002/unlock', 'for gas-002 only', { qos: 1 })
    await gateway.publishAsync('cmd/phone-001/task', 'walk route R7', { qos: 1 })
    await other.publishAsync('dev/gas-002/reading', '{"quantity":"gas","value":12}', { qos: 1 })
    await gateway.publishAsync('cmd/gas-001/calibrate', 'yours', { qos: 1 })

    const denied = await metric('broker_acl_denied_total', 'action="deliver"')
    const back = unconnected('gas-001', clientId)
    const got = collectUntil(back, 'cmd/gas-001/calibrate')
    back.connect()
    expect(await got).toEqual(['cmd/gas-001/calibrate yours'])
    // Not even queued for it: the delivery check (next test) had nothing to refuse.
    expect(await metric('broker_acl_denied_total', 'action="deliver"')).toBe(denied)
  })

  it('a client id is its session owner\'s: another identity may not take it over, resume it or wipe it', async () => {
    const clientId = 'owned-by-gas-001'
    const owner = track(await connectAs(tcp, 'gas-001', { clientId, clean: false }))
    await owner.subscribeAsync('cmd/gas-001/#', { qos: 1 })
    const before = await metric('broker_auth_failures_total', 'reason="client_id_taken"')
    // While the owner is connected: no takeover.
    const live = await connectAs(tcp, 'gas-002', { clientId }).then(() => undefined, (e: { code?: number }) => e.code)
    expect(live).toBe(2)
    expect(owner.connected).toBe(true)
    await owner.endAsync()

    // While it is away: its queued command stays queued, whatever another identity tries.
    const gateway = track(await connectAs(tcp, GATEWAY_ID))
    await gateway.publishAsync('cmd/gas-001/unlock', 'for the owner', { qos: 1 })
    for (const clean of [false, true]) {
      const code = await connectAs(tcp, 'gas-002', { clientId, clean }).then(() => undefined, (e: { code?: number }) => e.code)
      expect(code, `clean ${clean}`).toBe(2)
    }
    const anonymous = await connectAs(tcp, undefined, { clientId }).then(() => undefined, (e: { code?: number }) => e.code)
    expect(anonymous).toBe(5)
    expect(await metric('broker_auth_failures_total', 'reason="client_id_taken"')).toBe(before + 3)
    expect(lines.some((l) => l.includes('BROKER_AUTH_REFUSED') && l.includes('client_id_taken'))).toBe(true)

    const back = unconnected('gas-001', clientId)
    const got = collectUntil(back, 'cmd/gas-001/unlock')
    back.connect()
    expect(await got).toEqual(['cmd/gas-001/unlock for the owner'])
  })

  it('a CONNECT that is refused, or never completes, claims nothing', async () => {
    // gas-002 tries gas-001's usual client id with a Will on gas-001's topic: refused (CONNACK 5).
    const will = { topic: 'dev/gas-001/status', payload: Buffer.from('{"state":"offline"}'), qos: 1 as const, retain: false }
    expect(await connectAs(tcp, 'gas-002', { clientId: 'squatted-id', will }).then(() => undefined, (e: { code?: number }) => e.code)).toBe(5)
    // The real owner of that id still gets in.
    const owner = track(await connectAs(tcp, 'gas-001', { clientId: 'squatted-id', clean: false }))
    expect(owner.connected).toBe(true)
  })

  it('a clean session gives its client id up when it ends', async () => {
    const first = await connectAs(tcp, 'gas-001', { clientId: 'passing-id', clean: true })
    const gone = nextEvent<{ id: string }>((l) => {
      broker.broker.aedes.on('clientDisconnect', l)
      return () => broker.broker.aedes.off('clientDisconnect', l)
    }, (c) => c.id === 'passing-id')
    await first.endAsync()
    await gone
    const second = track(await connectAs(tcp, 'gas-002', { clientId: 'passing-id', clean: true }))
    expect(second.connected).toBe(true)
  })
})

describe('sessions kept from before ownership was recorded', () => {
  it('the first identity to resume one gets only what it may read; the rest is dropped, counted and logged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'broker-legacy-'))
    const path = join(dir, 'broker.db')
    const { logger, lines } = capturingLogger('broker')
    let broker = await startTestBroker({ settings: { persistence: { path } } })
    await broker.stop()
    // A session as an older version kept it: a '#' subscription, no owner.
    const db = new Database(path)
    db.prepare('INSERT INTO subscriptions (client_id, topic, record) VALUES (?, ?, ?)').run('legacy', '#', JSON.stringify({ qos: 1 }))
    db.prepare('DELETE FROM session_owners').run()
    db.close()
    broker = await startTestBroker({ logger, settings: { persistence: { path } } })
    const tcp = `mqtt://127.0.0.1:${broker.broker.ports.tcp}`
    try {
      const gateway = await connectAs(tcp, GATEWAY_ID)
      await gateway.publishAsync('cmd/gas-002/unlock', 'not for gas-001', { qos: 1 })
      await gateway.publishAsync('cmd/gas-001/ping', 'for gas-001', { qos: 1 })
      await gateway.endAsync()
      const device = mqtt.connect(tcp, { clientId: 'legacy', clean: false, username: 'gas-001', password: passwordOf('gas-001'), reconnectPeriod: 0, manualConnect: true })
      const got: string[] = []
      const own = nextEvent<string>((l) => {
        const h = (topic: string) => (got.push(topic), l(topic))
        device.on('message', h)
        return () => device.off('message', h)
      }, (t) => t === 'cmd/gas-001/ping')
      device.connect()
      await own
      expect(got).toEqual(['cmd/gas-001/ping'])
      await waitFor(() => (lines.some((l) => l.includes('BROKER_DELIVERY_DENIED') && l.includes('cmd/gas-002/unlock')) ? true : undefined))
      // Resuming also dropped the '#' it may not have: it queues nothing more for the session.
      await waitFor(() => (lines.some((l) => l.includes('BROKER_SESSION_FILTERS_DROPPED')) ? true : undefined))
      const other = await connectAs(tcp, GATEWAY_ID)
      await other.publishAsync('cmd/gas-002/unlock', 'again', { qos: 1 })
      await other.endAsync()
      const check = new Database(path, { readonly: true })
      expect(check.prepare("SELECT topic FROM subscriptions WHERE client_id = 'legacy'").all()).toEqual([])
      expect(queuedOnDisk(path, 'legacy')).toEqual([])
      check.close()
      await device.endAsync()
      // Resuming it made it gas-001's, and that outlives a restart.
      await broker.stop()
      broker = await startTestBroker({ settings: { persistence: { path } } })
      const again = `mqtt://127.0.0.1:${broker.broker.ports.tcp}`
      expect(await connectAs(again, 'gas-002', { clientId: 'legacy', clean: false }).then(() => undefined, (e: { code?: number }) => e.code)).toBe(2)
      const owner = await connectAs(again, 'gas-001', { clientId: 'legacy', clean: false })
      await owner.endAsync()
    } finally {
      await broker.stop()
      removeTestDir(dir)
    }
  })
})

describe('queued messages across a broker restart', () => {
  it('messages queued before and after a restart are each delivered once, and acknowledging one never clears another', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'broker-counter-'))
    const path = join(dir, 'broker.db')
    // A stable broker id, as a configured office broker has: Aedes restarts its message counter
    // at 0, so a queued message kept from before and a new one may carry the same (id, counter).
    let broker = await startTestBroker({ id: 'office-broker', settings: { persistence: { path } } })
    const url = () => `mqtt://127.0.0.1:${broker.broker.ports.tcp}`
    const publish = async (names: string[]) => {
      const gateway = await connectAs(url(), GATEWAY_ID)
      for (const n of names) await gateway.publishAsync('cmd/gas-001/task', n, { qos: 2 })
      await gateway.endAsync()
    }
    /** Resumes the session and collects until `last` (acknowledging everything, as MQTT.js does). */
    const resume = async (last: string | undefined) => {
      const device = mqtt.connect(url(), { clientId: 'counter-dev', clean: false, username: 'gas-001', password: passwordOf('gas-001'), reconnectPeriod: 0, manualConnect: true })
      const got: string[] = []
      const done = last === undefined ? undefined : nextEvent<string>((l) => {
        const h = (_t: string, p: Buffer) => (got.push(p.toString()), l(p.toString()))
        device.on('message', h)
        return () => device.off('message', h)
      }, (p) => p === last)
      device.connect()
      await nextEvent<void>((l) => (device.once('connect', () => l()), () => {}))
      await done
      return { device, got }
    }
    try {
      const first = await resume(undefined)
      await first.device.subscribeAsync('cmd/gas-001/#', { qos: 2 })
      await first.device.endAsync()
      const old = Array.from({ length: 10 }, (_, i) => `old-${i}`)
      const fresh = Array.from({ length: 10 }, (_, i) => `new-${i}`)
      await publish(old)
      await broker.stop()
      broker = await startTestBroker({ id: 'office-broker', settings: { persistence: { path } } })
      await publish(fresh)
      const second = await resume('new-9')
      expect(second.got).toEqual([...old, ...fresh])
      // Let the last acknowledgements (PUBREC, PUBCOMP) land, then nothing may come back.
      await second.device.publishAsync('dev/gas-001/reading', '{}', { qos: 2 })
      await second.device.endAsync()
      // And nothing acknowledged stays on disk, to come back after the next restart.
      const rowsLeft = () => queuedOnDisk(path, 'counter-dev').length
      await waitFor(() => (rowsLeft() === 0 ? true : undefined), { timeoutMs: 5000 }).catch(() => expect(rowsLeft(), 'queue rows left on disk').toBe(0))
      await publish(['sentinel'])
      const third = await resume('sentinel')
      expect(third.got).toEqual(['sentinel'])
      await third.device.endAsync()
    } finally {
      await broker.stop()
      removeTestDir(dir)
    }
  })
})

describe('overlapping subscriptions in a persistent session', () => {
  it('queue one copy of a message: acknowledged once, it is gone, after a restart too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'broker-overlap-'))
    const path = join(dir, 'broker.db')
    let broker = await startTestBroker({ id: 'office-broker', settings: { persistence: { path } } })
    const url = () => `mqtt://127.0.0.1:${broker.broker.ports.tcp}`
    const resume = async (sentinel: string) => {
      const device = mqtt.connect(url(), { clientId: 'overlap-dev', clean: false, username: 'gas-001', password: passwordOf('gas-001'), reconnectPeriod: 0, manualConnect: true })
      const got: string[] = []
      const done = nextEvent<string>((l) => {
        const h = (_t: string, p: Buffer) => (got.push(p.toString()), l(p.toString()))
        device.on('message', h)
        return () => device.off('message', h)
      }, (p) => p === sentinel)
      device.connect()
      await done
      // A QoS 1 round trip of its own: its PUBACKs for everything above have been read by then.
      await device.publishAsync('dev/gas-001/reading', '{}', { qos: 1 })
      await device.endAsync()
      return got
    }
    const command = async (text: string) => {
      const gateway = await connectAs(url(), GATEWAY_ID)
      await gateway.publishAsync('cmd/gas-001/task', text, { qos: 1 })
      await gateway.endAsync()
    }
    try {
      const first = await connectAs(url(), 'gas-001', { clientId: 'overlap-dev', clean: false })
      await first.subscribeAsync(['cmd/gas-001/#', 'cmd/gas-001/+'], { qos: 1 })
      await first.endAsync()
      await command('walk R1')
      expect(await resume('walk R1')).toEqual(['walk R1'])
      await command('sentinel 1')
      expect(await resume('sentinel 1')).toEqual(['sentinel 1'])
      await broker.stop()
      broker = await startTestBroker({ id: 'office-broker', settings: { persistence: { path } } })
      await command('sentinel 2')
      expect(await resume('sentinel 2')).toEqual(['sentinel 2'])
    } finally {
      await broker.stop()
      removeTestDir(dir)
    }
  })
})

describe('QoS 2 to a persistent session, many messages', () => {
  it('leaves nothing behind once every message is acknowledged: no queue rows, no keys in memory', async () => {
    const broker = await startTestBroker({})
    const tcp = `mqtt://127.0.0.1:${broker.broker.ports.tcp}`
    const persistence = (broker.broker.aedes as unknown as { persistence: { rowOf: Map<string, number> } }).persistence
    try {
      const device = await connectAs(tcp, 'gas-001', { clientId: 'qos2-many', clean: false })
      await device.subscribeAsync('cmd/gas-001/#', { qos: 2 })
      let got = 0
      device.on('message', () => got++)
      const gateway = await connectAs(tcp, GATEWAY_ID)
      await Promise.all(Array.from({ length: 300 }, (_, i) => gateway.publishAsync('cmd/gas-001/x', `m${i}`, { qos: 2 })))
      await waitFor(() => (got === 300 ? true : undefined), { what: '300 QoS 2 messages' })
      const rows = () => queuedOnDisk(broker.settings.persistence.path!, 'qos2-many').length
      // Their PUBCOMPs land after the last message event: wait for the rows to go.
      await waitFor(() => (rows() === 0 ? true : undefined), { what: 'every queue row deleted' })
      expect(persistence.rowOf.size).toBe(0)
      await device.endAsync()
      await gateway.endAsync()
    } finally {
      await broker.stop()
    }
  })
})

describe('malformed filters and persistent sessions', () => {
  it('a SUBSCRIBE with malformed filters closes the connection once, stores none of them, and the session resumes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'broker-malformed-'))
    const path = join(dir, 'broker.db')
    let broker = await startTestBroker({ settings: { persistence: { path } } })
    const tcp = () => `mqtt://127.0.0.1:${broker.broker.ports.tcp}`
    const resume = () => connectAs(tcp(), 'gas-001', { clientId: 'malformed', clean: false })
    try {
      const before = await brokerMetric(broker, 'broker_forced_disconnects_total', 'reason="protocol_violation"')
      const device = await resume()
      const closed = new Promise<void>((resolve) => device.once('close', () => resolve()))
      device.subscribe({ 'cmd/gas-001/a': { qos: 1 }, 'cmd/gas-001/\u0000x': { qos: 1 }, 'cmd/gas-001/\u0000y': { qos: 1 }, 'cmd/gas-001/\u0000z': { qos: 0 } })
      await closed
      device.end(true)
      expect(await brokerMetric(broker, 'broker_forced_disconnects_total', 'reason="protocol_violation"')).toBe(before + 1)
      const again = await resume()
      await again.endAsync()
      await broker.stop()
      const db = new Database(path)
      expect((db.prepare("SELECT topic FROM subscriptions WHERE client_id = 'malformed'").all() as { topic: string }[]).filter((r) => r.topic.includes('\u0000'))).toEqual([])
      // One as an older version could have stored it: resuming must still work, and drops it.
      db.prepare('INSERT OR REPLACE INTO subscriptions (client_id, topic, record) VALUES (?, ?, ?)').run('malformed', 'cmd/gas-001/\u0000old', JSON.stringify({ qos: 1 }))
      db.close()
      broker = await startTestBroker({ settings: { persistence: { path } } })
      const resumed = await resume()
      await waitFor(() => {
        const check = new Database(path, { readonly: true })
        const left = check.prepare("SELECT count(*) AS n FROM subscriptions WHERE client_id = 'malformed' AND topic LIKE '%old'").get() as { n: number }
        check.close()
        return left.n === 0 ? true : undefined
      })
      await resumed.endAsync()
    } finally {
      await broker.stop()
      removeTestDir(dir)
    }
  })
})
