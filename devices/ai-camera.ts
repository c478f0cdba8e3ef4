/**
 * An AI camera box that pushes detection events as JSON over MQTT (the ISAPI HTTP push path
 * arrives with the gateway inputs issue).
 */
import type { MqttDevice } from './mqtt-device.ts'

export class AiCamera {
  constructor(private readonly device: MqttDevice) {}

  detect(event: string, confidence: number, region: string, channel = 1): Promise<void> {
    return this.device.publish('camera', { ts: Date.now(), event, confidence, region, channel })
  }
}
