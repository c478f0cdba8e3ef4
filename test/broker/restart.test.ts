/**
 * The restart test: a persistent-session subscriber is offline, 1,000 QoS 1 messages are
 * published and acknowledged, the broker process is killed with SIGKILL and restarted, and the
 * subscriber reconnects and receives every one of them.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { afterAll, describe, expect, it } from 'vitest'
import { brokerDefaults } from '../../broker/config.ts'
import { hashPassword } from '../../common/secrets.ts'
import { freePort } from '../../common/ports.ts'
import { connectAs, GATEWAY_ID, passwordOf, queuedOnDisk, startTestBroker } from '../helpers/broker.ts'
import { RawMqtt } from '../helpers/raw-mqtt.ts'
import { startBrokerProcess, writeBrokerConfig, type BrokerProcess } from '../../bench/lib/broker-process.ts'
import { removeTestDir } from '../helpers/temp.ts'

const MESSAGES = 1000

describe('broker restart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-broker-restart-'))
  let broker: BrokerProcess | undefined
  afterAll(async () => {
    await broker?.stop()
    removeTestDir(dir)
  })

  it('a persistent session gets all 1,000 acknowledged QoS 1 messages after the broker is SIGKILLed', async () => {
    const port = await freePort()
    const configPath = writeBrokerConfig(dir, {
      id: 'restart-broker',
      broker: { ...brokerDefaults, tcp: { host: '127.0.0.1', port }, persistence: { path: join(dir, 'broker.db'), synchronous: 'full' } },
      devices: [
        { id: 'phone-001', secret: await hashPassword(passwordOf('phone-001')) },
        { id: GATEWAY_ID, secret: await hashPassword(passwordOf(GATEWAY_ID)), role: 'gateway' },
      ],
      http: null,
    })
    broker = await startBrokerProcess(configPath)
    const url = `mqtt://127.0.0.1:${port}`
    const session = { clientId: 'phone-001-session', clean: false }

    // 1. The subscriber's persistent session exists, and the subscriber goes offline.
    const phone = await connectAs(url, 'phone-001', session)
    await phone.subscribeAsync('cmd/phone-001/#', { qos: 1 })
    await phone.endAsync()

    // 2. 1,000 QoS 1 messages, each acknowledged by the broker.
    const gateway = await connectAs(url, GATEWAY_ID)
    await Promise.all(Array.from({ length: MESSAGES }, (_, i) => gateway.publishAsync('cmd/phone-001/task', String(i), { qos: 1 })))
    await gateway.endAsync(true)

    // 3. SIGKILL: no shutdown hook runs. Then the same config starts a new process.
    await broker.kill()
    broker = await startBrokerProcess(configPath)

    // 4. The subscriber reconnects to its session and receives every message.
    const received = new Set<string>()
    const all = new Promise<void>((resolve) => {
      const back = mqtt.connect(url, { ...session, username: 'phone-001', password: passwordOf('phone-001'), reconnectPeriod: 0 })
      back.on('connect', (connack) => expect(connack.sessionPresent).toBe(true))
      back.on('message', (_topic, payload) => {
        received.add(payload.toString())
        if (received.size === MESSAGES) back.end(() => resolve())
      })
    })
    await Promise.race([all, new Promise((_, reject) => setTimeout(() => reject(new Error(`only ${received.size} of ${MESSAGES} arrived`)), 20_000))])
    expect([...received].map(Number).sort((a, b) => a - b)).toEqual(Array.from({ length: MESSAGES }, (_, i) => i))
  }, 60_000)
})

describe('what a PUBACK from the standalone broker means', () => {
  it('each QoS 1 message for an offline persistent subscriber is on disk when its PUBACK arrives', async () => {
    const broker = await startTestBroker({ settings: { persistence: { synchronous: 'full' } } })
    try {
      const url = `mqtt://127.0.0.1:${broker.broker.ports.tcp}`
      const phone = await connectAs(url, 'phone-001', { clientId: 'phone-001-offline', clean: false })
      await phone.subscribeAsync('cmd/phone-001/#', { qos: 1 })
      await phone.endAsync()
      // Read from the files, synchronously at each PUBACK: what it sees is written (and, with
      // synchronous: full, the PUBACK waited for the fsync).
      const onDisk = (payload: Buffer) => queuedOnDisk(broker.settings.persistence.path!, 'phone-001-offline').filter((r) => r.payload.equals(payload)).length
      const raw = await RawMqtt.open(broker.broker.ports.tcp!)
      await raw.login('gw-raw', GATEWAY_ID, passwordOf(GATEWAY_ID))
      const missing: number[] = []
      for (let id = 1; id <= 50; id++) {
        const payload = Buffer.from(`task ${id}`)
        raw.send({ cmd: 'publish', topic: 'cmd/phone-001/task', payload, qos: 1, messageId: id, retain: false, dup: false })
        await raw.next((p) => p.cmd === 'puback' && (p as { messageId?: number }).messageId === id)
        if (onDisk(payload) === 0) missing.push(id)
      }
      raw.close()
      expect(missing).toEqual([])
    } finally {
      await broker.stop()
    }
  })
})

describe('Wills across a restart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-broker-wills-'))
  let broker: BrokerProcess | undefined
  afterAll(async () => {
    await broker?.stop()
    removeTestDir(dir)
  })

  it('a device connected when the broker was SIGKILLed gets its Will published after the grace period, unless it is back', async () => {
    const port = await freePort()
    const configPath = writeBrokerConfig(dir, {
      // A stable id, as an office broker has: this run's own heartbeat used to keep such Wills from firing.
      id: 'office-broker',
      broker: {
        ...brokerDefaults,
        tcp: { host: '127.0.0.1', port },
        persistence: { path: join(dir, 'broker.db'), synchronous: 'full' },
        limits: { ...brokerDefaults.limits, restoredWillGraceMs: 1500 },
      },
      devices: await Promise.all(['gas-001', 'gas-002', GATEWAY_ID].map(async (id) => ({ id, secret: await hashPassword(passwordOf(id)), ...(id === GATEWAY_ID ? { role: 'gateway' as const } : {}) }))),
      http: null,
    })
    broker = await startBrokerProcess(configPath)
    const url = `mqtt://127.0.0.1:${port}`
    const will = (id: string) => ({ topic: `dev/${id}/status`, payload: Buffer.from('{"state":"offline","reason":"connection lost"}'), qos: 1 as const, retain: false })
    // The gateway's persistent session is subscribed before the kill, so a Will published after the
    // restart is queued for it however long its reconnect takes on a busy machine.
    const watcher = { clientId: 'gw-wills', clean: false }
    const before = await connectAs(url, GATEWAY_ID, watcher)
    await before.subscribeAsync('dev/+/status', { qos: 1 })
    await before.endAsync()
    const gone = await connectAs(url, 'gas-001', { clientId: 'gas-001', will: will('gas-001') })
    const back = await connectAs(url, 'gas-002', { clientId: 'gas-002', will: will('gas-002') })

    // Killed with both devices still connected, so no Will goes out before the crash (closing
    // their sockets first let the broker publish gas-001's Will at once, and the test then saw
    // that copy instead of the restored one).
    await broker.kill()
    gone.end(true)
    back.end(true)
    // Before the new process starts: its grace period cannot begin earlier than this.
    const started = Date.now()
    broker = await startBrokerProcess(configPath)
    // gas-002 comes back at once, without a Will: its CONNECT removes the old one.
    const returned = await connectAs(url, 'gas-002', { clientId: 'gas-002' })
    // Listening before the CONNACK: queued messages follow it at once.
    const gateway = mqtt.connect(url, { ...watcher, username: GATEWAY_ID, password: passwordOf(GATEWAY_ID), reconnectPeriod: 0 })
    gateway.on('error', () => undefined)
    const resumed = new Promise<boolean>((resolve) => gateway.once('connect', (connack) => resolve(connack.sessionPresent)))
    const got: string[] = []
    const first = new Promise<string>((resolve) => {
      gateway.on('message', (topic, payload) => {
        got.push(`${topic} ${payload.toString()}`)
        resolve(topic)
      })
    })
    expect(await resumed).toBe(true)
    expect(await Promise.race([first, new Promise((_, reject) => setTimeout(() => reject(new Error('no Will within 10 s')), 10_000))])).toBe('dev/gas-001/status')
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500)
    // A sentinel from gas-002 itself, after which the Will sweep is long done: no Will of gas-002.
    await returned.publishAsync('dev/gas-002/status', '{"state":"online"}', { qos: 1 })
    await new Promise<void>((resolve) => gateway.on('message', (topic) => topic === 'dev/gas-002/status' && resolve()))
    expect(got).toEqual(['dev/gas-001/status {"state":"offline","reason":"connection lost"}', 'dev/gas-002/status {"state":"online"}'])
    await returned.endAsync()
    await gateway.endAsync()
  }, 60_000)
})
