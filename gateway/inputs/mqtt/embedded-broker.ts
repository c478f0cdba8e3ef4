/**
 * MQTT input with the broker embedded in the gateway process: devices connect straight to the
 * gateway, and a QoS 1 PUBACK goes out only after the message is committed to the outbox
 * (see broker/broker.ts for how Aedes is made to wait).
 */
import type { Client, PublishPacket } from 'aedes'
import { commandTopic } from '../../../contracts/topics.ts'
import type { Logger } from '../../../common/logger.ts'
import type { Registry } from 'prom-client'
import { startBroker, type RunningBroker } from '../../../broker/broker.ts'
import type { Identity } from '../../../broker/acl.ts'
import { DeviceRegistry } from '../../../broker/registry.ts'
import type { GatewayConfig } from '../../config/schema.ts'
import type { Pipeline } from '../../pipeline.ts'
import type { InputHealth } from '../input.ts'
import { isDeviceStatus } from '../../normalize/normalize.ts'
import { ingestDevicePublish } from './device-publish.ts'
import type { MqttInput } from './mqtt-input.ts'

export class EmbeddedBrokerInput implements MqttInput {
  readonly name = 'mqtt'
  private running: RunningBroker | undefined
  private readonly registry: DeviceRegistry
  private readonly statusWills = new WeakSet<Client>()

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
      settings: this.config.broker,
      registry: this.registry,
      // Stable across restarts, so persisted sessions and Wills are recognised as this broker's.
      id: `${this.config.gateway.id}-broker`,
      ingest: (identity, packet, client, done) => this.ingest(identity, packet, client, done),
      presence: {
        online: (identity, client) => this.presence(identity, client, 'online'),
        offline: (identity, client, graceful) => this.presence(identity, client, 'offline', graceful),
      },
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

  private ingest(identity: Identity, packet: PublishPacket, client: Client | null, done: (err: Error | null) => void): void {
    const publish = { topic: packet.topic, payload: packet.payload, qos: packet.qos, messageId: packet.messageId, session: client?.id, deviceId: identity.deviceId }
    ingestDevicePublish(this.pipeline, 'mqtt', publish, (deviceId, command, body) => this.command(deviceId, command, body), done)
  }

  /**
   * Presence: a device's connect and disconnect become status events in the pipeline, like a
   * status message it sent itself. A device that left a Will on its own status topic speaks for
   * itself when it drops, so no second offline event is made for it; but only a Will the gateway
   * will take as a status (a plain-text `offline`, Tasmota's style, is refused as not JSON), or
   * that device would never go offline at all.
   */
  private presence(identity: Identity, client: Client, state: 'online' | 'offline', graceful = false): void {
    const deviceId = identity.deviceId
    if (deviceId === undefined || identity.role === 'gateway') return
    if (state === 'online') {
      const will = (client as Client & { will?: { topic?: string; payload?: Buffer } | null }).will
      if (will?.topic === `dev/${deviceId}/status` && will.payload !== undefined && isDeviceStatus(will.payload)) this.statusWills.add(client)
    } else if (!graceful && this.statusWills.has(client)) {
      return
    }
    const reason = state === 'online' ? 'connected' : graceful ? 'disconnected' : 'connection lost'
    const raw = Buffer.from(JSON.stringify({ state, reason }))
    this.pipeline.accept({ input: 'mqtt', deviceId, kind: 'status', raw, receivedAt: Date.now() }, (err) => {
      if (err) this.logger.warn({ code: 'GW_PRESENCE_NOT_STORED', device: deviceId, state, err: err.message }, 'presence event not stored')
    })
  }

  /** A changed office config: new devices may connect, removed ones no longer can. */
  replaceDevices(devices: GatewayConfig['devices']): void {
    this.registry.replace(devices)
  }

  private command(deviceId: string, command: string, body: object): void {
    this.running?.aedes.publish(
      { cmd: 'publish', topic: commandTopic(deviceId, command), payload: Buffer.from(JSON.stringify(body)), qos: 0, dup: false, retain: false },
      () => {},
    )
  }
}
