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

/**
 * `messages` is set on a refusal too: a Good status clears the item's fault even when its value is
 * not a number (the sensor works; the configured node is the wrong one), and that may be an
 * `online` status to send.
 */
export type Conversion = { ok: true; messages: ConvertedMessage[] } | { ok: false; reason: 'not_numeric'; messages: ConvertedMessage[] }

/** The Variant's DataType (Part 6, 5.1.2) where the value alone cannot say it: 64-bit integers. */
export type WideIntegerType = 'Int64' | 'UInt64'

export interface ItemValue {
  value: unknown
  /** The 32-bit status code and its name (`BadSensorFailure`, ...). */
  status: number
  statusName: string
  /** Epoch ms of the source timestamp, else the server timestamp, else undefined. */
  ts: number | undefined
  /** Set for an Int64 or UInt64 Variant, whose value node-opcua gives as `[high, low]` 32-bit words. */
  dataType?: WideIntegerType | undefined
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
    // The fault is cleared before the value is checked: a Good status says the sensor works, so an
    // item that goes Bad and then Good with a value that is not a number must not leave its device
    // faulted for good.
    if (faults?.delete(index) && faults.size === 0) {
      this.faults.delete(b.device)
      messages.push(status(b.device, `{"state":"online"${tsField}}`))
    } else if (!this.known.has(b.device) && !faults) {
      // The first Good value since the gateway started says the sensor works: it clears a fault
      // that was open when the gateway went down (sensor.fault persists across restarts).
      messages.push(status(b.device, `{"state":"online"${tsField}}`))
    }
    this.known.add(b.device)
    const n = numberOf(v.value, v.dataType)
    if (!Number.isFinite(n)) return { ok: false, reason: 'not_numeric', messages }
    const value = b.scale === 1 ? n : n * b.scale
    messages.push({ deviceId: b.device, kind: 'reading', raw: Buffer.from(`${b.prefix}${value}${tsField}}`) })
    return { ok: true, messages }
  }
}

/**
 * node-opcua decodes Int64 and UInt64 (Part 6, 5.2.2.2) as `[high, low]`, two unsigned 32-bit
 * words (node-opcua-basic-types constructInt64); Int64 is two's complement. Beyond 2^53 the
 * number is rounded to the nearest double, as any reading is.
 */
function numberOf(value: unknown, dataType: WideIntegerType | undefined): number {
  if (typeof value === 'number') return value
  if (typeof value === 'boolean') return Number(value)
  if (dataType !== undefined && Array.isArray(value) && value.length === 2 && value.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) {
    const bits = (BigInt(value[0] as number) << 32n) | BigInt(value[1] as number)
    return Number(dataType === 'Int64' ? BigInt.asIntN(64, bits) : bits)
  }
  return NaN
}

function status(deviceId: string, json: string): ConvertedMessage {
  return { deviceId, kind: 'status', raw: Buffer.from(json) }
}
