/**
 * Uplink converter of the OPC UA input: one monitored item's DataValue becomes device messages.
 * A Good value is a reading; a Bad or Uncertain status code is the sensor's fault, reported as a
 * `status` (`fault`, reason = the status code's name) and `online` again once every item of that
 * device is Good. Pure: no node-opcua types, so it is tested without a server.
 *
 * Status code severity is the top two bits (OPC UA Part 4, 7.39): 00 Good, 01 Uncertain, 1x Bad.
 */
import type { OpcuaItemSettings } from './config.ts'

export interface ConvertedMessage {
  deviceId: string
  kind: 'reading' | 'status'
  raw: Buffer
}

export type Conversion = { ok: true; messages: ConvertedMessage[] } | { ok: false; reason: 'not_numeric' }

export interface ItemValue {
  value: unknown
  /** The 32-bit status code and its name (`BadSensorFailure`, ...). */
  status: number
  statusName: string
  /** Epoch ms of the source timestamp, else the server timestamp, else undefined. */
  ts: number | undefined
}

export function isGood(status: number): boolean {
  return status >>> 30 === 0
}

interface Binding {
  device: string
  scale: number
  /** `{"quantity":"gas","unit":"%LEL","value":` built once: this runs for every notification. */
  prefix: string
}

export class NotificationConverter {
  private readonly bindings: Binding[]
  /** device → item index → the non-Good status it is in. */
  private readonly faults = new Map<string, Map<number, string>>()
  /** Devices whose state this input has reported since it started. */
  private readonly known = new Set<string>()

  constructor(items: readonly OpcuaItemSettings[], unitOf: (quantity: string) => string | undefined) {
    this.bindings = items.map((i) => {
      const unit = i.unit ?? unitOf(i.quantity)
      const head = `{"quantity":${JSON.stringify(i.quantity)}${unit !== undefined ? `,"unit":${JSON.stringify(unit)}` : ''},"value":`
      return { device: i.device, scale: i.scale, prefix: head }
    })
  }

  convert(index: number, v: ItemValue): Conversion {
    const b = this.bindings[index]
    const messages: ConvertedMessage[] = []
    const tsField = v.ts !== undefined && Number.isFinite(v.ts) && v.ts >= 0 ? `,"ts":${Math.floor(v.ts)}` : ''
    let faults = this.faults.get(b.device)
    if (!isGood(v.status)) {
      // The value that came with a Bad or Uncertain status is not a measurement (Part 8, 6.3.3 for
      // the meaning of the sensor-specific codes): report the fault and no reading.
      if (faults?.get(index) !== v.statusName) {
        if (!faults) this.faults.set(b.device, (faults = new Map<number, string>()))
        faults.set(index, v.statusName)
        this.known.add(b.device)
        messages.push(status(b.device, `{"state":"fault","reason":${JSON.stringify(v.statusName.slice(0, 120))}${tsField}}`))
      }
      return { ok: true, messages }
    }
    const n = typeof v.value === 'number' ? v.value : typeof v.value === 'boolean' ? Number(v.value) : NaN
    if (!Number.isFinite(n)) return { ok: false, reason: 'not_numeric' }
    if (faults?.delete(index) && faults.size === 0) {
      this.faults.delete(b.device)
      messages.push(status(b.device, `{"state":"online"${tsField}}`))
    } else if (!this.known.has(b.device) && !faults) {
      // The first Good value since the gateway started says the sensor works: it clears a fault
      // that was open when the gateway went down (sensor.fault persists across restarts).
      messages.push(status(b.device, `{"state":"online"${tsField}}`))
    }
    this.known.add(b.device)
    const value = b.scale === 1 ? n : n * b.scale
    messages.push({ deviceId: b.device, kind: 'reading', raw: Buffer.from(`${b.prefix}${value}${tsField}}`) })
    return { ok: true, messages }
  }
}

function status(deviceId: string, json: string): ConvertedMessage {
  return { deviceId, kind: 'status', raw: Buffer.from(json) }
}
