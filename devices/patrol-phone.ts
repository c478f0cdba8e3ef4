/**
 * A grid patrol officer's phone: scans checkpoint NFC tags, reports problems, raises SOS.
 */
import type { MqttDevice } from './mqtt-device.ts'

export class PatrolPhone {
  constructor(
    private readonly device: MqttDevice,
    readonly staff: string,
  ) {}

  scan(tag: string, at = Date.now()): Promise<void> {
    return this.device.publish('scan', { ts: at, tag, staff: this.staff, method: 'nfc' })
  }

  sos(text: string, location?: { lat: number; lon: number }): Promise<void> {
    return this.device.publish('report', { ts: Date.now(), type: 'sos', staff: this.staff, text, ...(location ? { location } : {}) })
  }

  reportProblem(category: string, text: string, location?: { lat: number; lon: number }): Promise<void> {
    return this.device.publish('report', { ts: Date.now(), type: 'problem', category, staff: this.staff, text, ...(location ? { location } : {}) })
  }
}
