/**
 * MQTT input with the broker embedded in the gateway process: devices connect straight to the
 * gateway, and a QoS 1 PUBACK goes out only after the message is committed to the outbox
 * (see broker/broker.ts for how Aedes is made to wait).
 */
import type { PublishPacket } from 'aedes'
import { commandTopic, parseDeviceTopic } from '../../../contracts/topics.ts'
import type { Logger } from '../../../common/logger.ts'
import type { Registry } from 'prom-client'
import { startBroker, type RunningBroker } from '../../../broker/broker.ts'
import type { Identity } from '../../../broker/acl.ts'
import { DeviceRegistry } from '../../../broker/registry.ts'
import type { GatewayConfig } from '../../config/schema.ts'
import type { Rejection } from '../../errors.ts'
import type { Pipeline } from '../../pipeline.ts'
import type { Input, InputHealth } from '../input.ts'

export class EmbeddedBrokerInput implements Input {
  readonly name = 'mqtt'
  private running: RunningBroker | undefined
  private readonly registry: DeviceRegistry

  constructor(
    private readonly config: GatewayConfig,
    private readonly pipeline: Pipeline,
    private readonly logger: Logger,
    private readonly metrics: Registry,
  ) {
    this.registry = new DeviceRegistry(config.devices)
  }

  /** The running broker (for presence, commands and tests). */
  get broker(): RunningBroker | undefined {
    return this.running
  }

  get port(): number | undefined {
    return this.running?.tcpPort
  }

  async start(): Promise<void> {
    this.running = await startBroker({
      registry: this.registry,
      allowAnonymous: this.config.broker.allowAnonymous,
      tcp: this.config.broker.tcp,
      ingest: (identity, packet, _client, done) => this.ingest(identity, packet, done),
      logger: this.logger.child({ component: 'broker' }),
      metrics: this.metrics,
    })
  }

  async stop(): Promise<void> {
    await this.running?.close()
    this.running = undefined
  }

  health(): InputHealth {
    return this.running ? { ok: true } : { ok: false, detail: 'broker not running' }
  }

  private ingest(identity: Identity, packet: PublishPacket, done: (err: Error | null) => void): void {
    const receivedAt = Date.now()
    const topic = parseDeviceTopic(packet.topic)
    if (!topic) {
      const deviceId = identity.deviceId ?? packet.topic.split('/')[1] ?? 'unknown'
      this.pipeline.rejectedTopic('mqtt', deviceId, packet.topic)
      this.nack(deviceId, packet.topic, { code: 'GW_TOPIC_INVALID', message: `"${packet.topic}" is not dev/{deviceId}/{kind}` })
      done(null)
      return
    }
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
    this.pipeline.accept({ input: 'mqtt', deviceId: topic.deviceId, kind: topic.kind, raw: payload, receivedAt }, (err, rejection) => {
      // A message that can never be accepted is still acknowledged (resending cannot fix it), and
      // the device is told why on its command topic.
      if (rejection) this.nack(topic.deviceId, packet.topic, rejection)
      done(err)
    })
  }

  private nack(deviceId: string, topic: string, rejection: Rejection): void {
    this.running?.aedes.publish(
      {
        cmd: 'publish',
        topic: commandTopic(deviceId, 'nack'),
        payload: Buffer.from(JSON.stringify({ topic, ...rejection })),
        qos: 0,
        dup: false,
        retain: false,
      },
      () => {},
    )
  }
}
