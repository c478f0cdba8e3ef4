/**
 * MQTT input through an office broker the gateway does not run (Mosquitto, EMQX, or GridWatch's
 * standalone broker): the gateway is an MQTT.js client with its own identity and a persistent
 * session, reading devices' `dev/+/+` topics.
 *
 * The promise is the embedded broker's, one hop later: the gateway PUBACKs a QoS 1 message to the
 * office broker only after it is committed to the outbox (MQTT.js `handleMessage`). Until then
 * the office broker keeps it in the gateway's session, so a gateway crash loses nothing that was
 * acknowledged; the broker resends it when the session resumes, and the outbox recognises it.
 *
 * Devices log in at the office broker, so presence comes from their Wills (docs/broker.md).
 */
import { readFileSync } from 'node:fs'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import type { Registry } from 'prom-client'
import { Counter, Gauge } from 'prom-client'
import type { Logger } from '../../../common/logger.ts'
import { commandTopic } from '../../../contracts/topics.ts'
import type { GatewayConfig } from '../../config/schema.ts'
import type { Pipeline } from '../../pipeline.ts'
import type { InputHealth } from '../input.ts'
import { ingestDevicePublish } from './device-publish.ts'
import type { MqttInput } from './mqtt-input.ts'

export class ExternalBrokerInput implements MqttInput {
  readonly name = 'mqtt'
  readonly port = undefined
  readonly broker = undefined
  private client: MqttClient | undefined
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
    // MQTT.js calls handleMessage before it sends the PUBACK (or PUBREC), one message at a time,
    // for every protocol version (customHandleAcks would need MQTT 5). An error means no PUBACK.
    client.handleMessage = (packet, callback) => {
      if (packet.cmd !== 'publish') return callback()
      const publish = { topic: packet.topic, payload: packet.payload, qos: packet.qos, messageId: packet.messageId, session: external.clientId, deviceId: undefined }
      ingestDevicePublish(this.pipeline, 'mqtt', publish, (deviceId, command, body) => this.command(deviceId, command, body), (err) => {
        if (!err) return callback()
        // Drop the connection so the broker resends when the session resumes.
        this.commitFailures.inc()
        log.error({ code: 'GW_EXTERNAL_UNACKED', err: err.message, topic: packet.topic }, 'outbox commit failed; leaving the message with the office broker')
        callback(err)
        client.stream.destroy()
      })
    }
    client.on('error', (err) => log.warn({ code: 'GW_EXTERNAL_BROKER_ERROR', err: err.message }, 'external broker error'))
    client.on('close', () => this.connected.set(0))
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

  async stop(): Promise<void> {
    await this.client?.endAsync()
    this.client = undefined
  }

  health(): InputHealth {
    return this.client?.connected ? { ok: true } : { ok: false, detail: 'not connected to the office broker' }
  }

  /** Devices authenticate at the office broker; the office config still decides whose data counts. */
  replaceDevices(): void {}

  private command(deviceId: string, command: string, body: object): void {
    this.client?.publish(commandTopic(deviceId, command), JSON.stringify(body), { qos: 0 })
  }
}
