/**
 * MQTT input through an office broker the gateway does not run (Mosquitto, EMQX, or GridWatch's
 * standalone broker): the gateway is an MQTT.js client with its own identity and a persistent
 * session, reading devices' `dev/+/+` topics.
 *
 * The promise is the embedded broker's, one hop later: the gateway PUBACKs a QoS 1 message to the
 * office broker only after it is committed to the outbox (held-acks.ts says how). Until then
 * the office broker keeps it in the gateway's session, so a gateway crash loses nothing that was
 * acknowledged; the broker resends it when the session resumes, and the outbox recognises it.
 *
 * Devices log in at the office broker, so presence comes from their Wills (docs/broker.md).
 */
import { readFileSync } from 'node:fs'
import mqtt, { type IClientOptions, type MqttClient, type Packet } from 'mqtt'
import type { Registry } from 'prom-client'
import { Counter, Gauge } from 'prom-client'
import type { Logger } from '../../../common/logger.ts'
import { commandTopic } from '../../../contracts/topics.ts'
import type { GatewayConfig } from '../../config/schema.ts'
import type { Pipeline } from '../../pipeline.ts'
import type { InputHealth } from '../input.ts'
import { ingestDevicePublish } from './device-publish.ts'
import { HeldAcks } from './held-acks.ts'
import type { MqttInput } from './mqtt-input.ts'

/**
 * Messages read from the office broker and in flight (uncommitted, or their PUBACK not yet taken
 * by the socket) before the gateway stops reading.
 */
const MAX_IN_FLIGHT = 1000
/** How long stop() waits for PUBACKs owed to committed messages. */
const STOP_ACK_MS = 2000

type SendPacket = (this: MqttClient, packet: Packet, cb?: (err?: Error) => void, ...rest: unknown[]) => void

export class ExternalBrokerInput implements MqttInput {
  readonly name = 'mqtt'
  readonly port = undefined
  readonly broker = undefined
  private client: MqttClient | undefined
  private acks: HeldAcks | undefined
  private stopping = false
  private readonly connected: Gauge
  private readonly commitFailures: Counter

  constructor(
    private readonly config: GatewayConfig,
    private readonly pipeline: Pipeline,
    private readonly logger: Logger,
    metrics: Registry,
  ) {
    this.connected = new Gauge({ name: 'gateway_external_broker_connected', help: '1 while connected to the external office broker', registers: [metrics] })
    this.commitFailures = new Counter({
      name: 'gateway_external_broker_unacked_total',
      help: 'Messages left unacknowledged at the external broker because the outbox commit failed (it resends them)',
      registers: [metrics],
    })
  }

  async start(): Promise<void> {
    const external = this.config.broker.external
    if (!external) throw new Error("broker.mode is 'external' but broker.external is not set")
    // Checked before connecting: a client left connected with MQTT.js's own handleMessage would
    // acknowledge everything at once and store nothing.
    if (typeof (mqtt.MqttClient.prototype as unknown as { _sendPacket?: unknown })._sendPacket !== 'function') {
      throw new Error('this MQTT.js has no _sendPacket: external mode cannot hold PUBACKs until the outbox commit')
    }
    const log = this.logger.child({ component: 'external-broker', url: external.url })
    const options: IClientOptions = {
      clientId: external.clientId,
      ...(external.username ? { username: external.username } : {}),
      ...(external.password ? { password: external.password } : {}),
      ...(external.ca ? { ca: readFileSync(external.ca) } : {}),
      // A persistent session: while the gateway is down or restarting, the office broker queues.
      clean: false,
      reconnectPeriod: 1000,
      protocolVersion: 4,
    }
    const client = mqtt.connect(external.url, options)
    this.client = client
    const acks = this.holdAcks(client)
    this.acks = acks
    client.handleMessage = (packet, callback) => {
      if (packet.cmd !== 'publish') return callback()
      // The connection this message came on: a failed commit ends that one, not a later one.
      const stream = client.stream
      // Stopping, or read from a connection already closed (MQTT.js goes on with packets it had
      // parsed, e.g. behind a slow QoS 2 commit): read but neither stored nor acknowledged, so
      // the office broker keeps it for the next session. MQTT.js's PUBACK for it is held by
      // nobody and dropped (holdAcks). Held, it would sit uncommitted at the head of the next
      // connection's queue if its commit failed, and no PUBACK would go out again.
      if (this.stopping || !client.connected || stream.destroyed) return callback()
      // Every device's messages share this session, so the topic is part of what tells a
      // redelivery from a new message on a reused packet id (device-publish.ts). DUP is not
      // trusted: Mosquitto resends what it restored from its snapshot after a crash with DUP 0.
      const publish = { topic: packet.topic, payload: packet.payload, qos: packet.qos, messageId: packet.messageId, session: external.clientId, deviceId: undefined, sharedSession: true }
      const reply = (deviceId: string, command: string, body: object) => this.command(deviceId, command, body)
      const failed = (err: Error) => {
        // Drop the connection so the broker resends when the session resumes.
        this.commitFailures.inc()
        log.error({ code: 'GW_EXTERNAL_UNACKED', err: err.message, topic: packet.topic }, 'outbox commit failed; leaving the message with the office broker')
        stream.destroy()
      }
      if (packet.qos === 2) {
        // QoS 2 stays one message at a time: MQTT.js keeps its PUBREC/PUBREL exchange itself.
        return ingestDevicePublish(this.pipeline, 'mqtt', publish, reply, (err) => {
          callback(err ?? undefined)
          if (err) failed(err)
        })
      }
      // QoS 0 and 1: on to the next packet while this one commits; a QoS 1 PUBACK waits (held-acks.ts).
      const held = packet.qos === 1 ? acks.hold(packet.messageId!) : undefined
      acks.begin(callback)
      ingestDevicePublish(this.pipeline, 'mqtt', publish, reply, (err) => {
        // QoS 0 leaves flight here; QoS 1 when its PUBACK is written, or its connection closes.
        if (!held) acks.end()
        if (err) failed(err)
        else if (held) acks.committed(held)
      })
    }
    client.on('error', (err) => log.warn({ code: 'GW_EXTERNAL_BROKER_ERROR', err: err.message }, 'external broker error'))
    client.on('close', () => {
      this.connected.set(0)
      acks.reset()
    })
    let subscribed: () => void = () => {}
    const ready = new Promise<void>((resolve) => (subscribed = resolve))
    client.on('connect', (connack) => {
      this.connected.set(1)
      log.info({ sessionPresent: connack.sessionPresent }, 'connected to the office broker')
      // Subscribing again on every connect costs nothing and survives a broker that lost sessions.
      client.subscribe(external.topic, { qos: 1 }, (err, granted) => {
        const refused = granted?.some((g) => g.qos === 128)
        if (err || refused) log.error({ code: 'GW_EXTERNAL_SUBSCRIBE_REFUSED', topic: external.topic, err: err?.message }, 'office broker refused the subscription')
        else subscribed()
      })
    })
    // Started means subscribed: from then on every device message is either read or queued for us.
    await Promise.race([
      ready,
      new Promise<void>((_, reject) => setTimeout(() => reject(new Error(`not subscribed at ${external.url} within 10 s`)), 10_000).unref()),
    ])
  }

  /**
   * Stores nothing more (what is still read is dropped unacknowledged), gives the PUBACKs owed for
   * committed messages up to `STOP_ACK_MS` to go out (else the office broker resends them all on
   * the next start), then disconnects, dropping the connection if that takes longer still.
   */
  async stop(): Promise<void> {
    this.stopping = true
    const bounded = (p: Promise<unknown>) => Promise.race([p, new Promise((resolve) => setTimeout(resolve, STOP_ACK_MS).unref())])
    if (this.acks) await bounded(this.acks.idle())
    const client = this.client
    this.client = undefined
    // A broker that does not answer the DISCONNECT (or a socket that cannot drain) must not hold
    // the gateway's shutdown: after the bound, the connection is dropped.
    // (Not endAsync(true): MQTT.js ignores a second end once the first is under way.)
    if (client && (await bounded(client.endAsync().then(() => true))) !== true) client.stream.destroy()
  }

  health(): InputHealth {
    return this.client?.connected ? { ok: true } : { ok: false, detail: 'not connected to the office broker' }
  }

  /**
   * Routes the client's PUBACKs through HeldAcks: each goes out once its message is committed, in
   * order, on the connection its PUBLISH came on, and never otherwise. `_sendPacket` is MQTT.js's
   * internal (5.x); its absence fails the start rather than acknowledge anything early.
   */
  private holdAcks(client: MqttClient): HeldAcks {
    const acks = new HeldAcks(MAX_IN_FLIGHT)
    const internals = client as unknown as { _sendPacket?: SendPacket }
    const send = internals._sendPacket
    if (typeof send !== 'function') throw new Error('this MQTT.js has no _sendPacket: external mode cannot hold PUBACKs until the outbox commit')
    internals._sendPacket = function (this: MqttClient, packet, cb, ...rest) {
      if (packet.cmd !== 'puback') return send.call(this, packet, cb, ...rest)
      const stream = client.stream
      // Not held: a PUBACK for a message of a closed connection, or read while stopping. Never
      // sent; the broker resends.
      acks.claim(packet.messageId!, (written) => {
        if (client.connected && client.stream === stream) send.call(client, packet, written)
        else written()
      })
      // MQTT.js goes on to its next packet when this calls back.
      process.nextTick(() => cb?.())
    }
    return acks
  }

  /** Devices authenticate at the office broker; the office config still decides whose data counts. */
  replaceDevices(): void {}

  private command(deviceId: string, command: string, body: object): void {
    this.client?.publish(commandTopic(deviceId, command), JSON.stringify(body), { qos: 0 })
  }
}
