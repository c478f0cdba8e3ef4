/**
 * A persistent session belongs to the identity that made it: what it queued while its client was
 * away reaches only a client that may read it, whatever filters were asked for and whoever
 * resumes it.
 */
import mqtt, { type MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StandaloneBroker } from '../../broker/standalone.ts'
import { connectAs, GATEWAY_ID, passwordOf, startTestBroker } from '../helpers/broker.ts'
import { capturingLogger } from '../helpers/stack.ts'
import { nextEvent } from '../helpers/wait.ts'

describe('persistent sessions and the topic ACL', () => {
  let broker: StandaloneBroker
  let tcp: string
  const { logger, lines } = capturingLogger('broker')
  const clients: MqttClient[] = []
  const track = (c: MqttClient) => (clients.push(c), c)
  const metric = async (name: string, labels: string) => {
    const m = new RegExp(`^${name}\\{${labels.replace(/[{}]/g, '\\$&')}\\} (\\d+)`, 'm').exec(await broker.metrics.metrics())
    return m ? Number(m[1]) : 0
  }

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

  it('a message the ACL does not let a client read is not delivered to it, and is counted and logged', async () => {
    // A session resumed under another identity (the client id is free, docs/contracts.md) still
    // holds the first owner's subscription; its queued commands must not reach the second.
    const clientId = 'shared-client-id'
    const owner = await connectAs(tcp, 'gas-001', { clientId, clean: false })
    await owner.subscribeAsync('cmd/gas-001/#', { qos: 1 })
    await owner.endAsync()
    const gateway = track(await connectAs(tcp, GATEWAY_ID))
    await gateway.publishAsync('cmd/gas-001/unlock', 'secret', { qos: 1 })
    const before = await metric('broker_acl_denied_total', 'action="deliver"')

    const intruder = unconnected('gas-002', clientId)
    const got: string[] = []
    intruder.on('message', (topic) => got.push(topic))
    intruder.connect()
    await nextEvent<void>((l) => (intruder.once('connect', () => l()), () => {}))
    // Its own subscription, and a command to it, prove deliveries flow; the sentinel comes after
    // the queued one, which is refused and cleared.
    await intruder.subscribeAsync('cmd/gas-002/#', { qos: 1 })
    const sentinel = collectUntil(intruder, 'cmd/gas-002/ping')
    await gateway.publishAsync('cmd/gas-002/ping', 'x', { qos: 1 })
    expect(await sentinel).toEqual(['cmd/gas-002/ping x'])
    expect(got).toEqual(['cmd/gas-002/ping'])
    expect(await metric('broker_acl_denied_total', 'action="deliver"')).toBeGreaterThan(before)
    expect(lines.some((l) => l.includes('BROKER_DELIVERY_DENIED') && l.includes('cmd/gas-001/unlock'))).toBe(true)
  })
})
