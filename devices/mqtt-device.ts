/**
 * What every simulated MQTT device shares: it logs in as itself (username = device id), leaves a
 * Last Will that says it went offline, announces itself online, and publishes JSON at QoS 1 on
 * `dev/{deviceId}/{kind}`.
 */
import mqtt, { type MqttClient } from 'mqtt'
import { deviceTopic, type DeviceKind } from '../contracts/topics.ts'

export interface DeviceConnection {
  url: string
  deviceId: string
  password: string
}

export class MqttDevice {
  private constructor(
    readonly deviceId: string,
    readonly client: MqttClient,
  ) {}

  static async connect(conn: DeviceConnection): Promise<MqttDevice> {
    const client = await mqtt.connectAsync(conn.url, {
      clientId: conn.deviceId,
      username: conn.deviceId,
      password: conn.password,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      will: {
        topic: deviceTopic(conn.deviceId, 'status'),
        payload: Buffer.from(JSON.stringify({ state: 'offline', reason: 'connection lost' })),
        qos: 1,
        retain: false,
      },
    })
    const device = new MqttDevice(conn.deviceId, client)
    await device.publish('status', { state: 'online' })
    return device
  }

  /** Resolves on PUBACK, which the gateway sends only after the message is committed. */
  async publish(kind: DeviceKind, message: object): Promise<void> {
    await this.client.publishAsync(deviceTopic(this.deviceId, kind), JSON.stringify(message), { qos: 1 })
  }

  /** A clean disconnect: the broker discards the Will. */
  async close(): Promise<void> {
    await this.client.endAsync()
  }
}
