/**
 * Uplink converter: a device message (topic kind + raw bytes) becomes a canonical envelope draft.
 * Transport-independent: MQTT, serial and HTTP inputs all hand their bytes here.
 *
 * The source time is settled here, once: the device's own `ts` when it is plausible, otherwise the
 * receive time. From then on it lives in the outbox row and is never stamped again.
 */
import type { EnvelopeDraft } from '../../contracts/envelope.ts'
import { deviceMessageSchemas, type DeviceCamera, type DeviceReading, type DeviceReport, type DeviceScan, type DeviceStatus } from '../../contracts/device-messages.ts'
import type { DeviceKind } from '../../contracts/topics.ts'
import { checker, type Checker } from '../../contracts/validate.ts'
import { toEpochMs } from '../../common/time.ts'
import type { Rejection } from '../errors.ts'
import type { DeviceConfig, GatewayConfig } from '../config/schema.ts'

export const MAX_PAYLOAD_BYTES = 64 * 1024

/** A device clock more than this far ahead of the gateway's is wrong, not early. */
export const MAX_CLOCK_AHEAD_MS = 5 * 60_000
/** Earliest plausible source time: an RTC that lost power reports 1970 or 2000. */
export const MIN_SOURCE_TIME_MS = Date.UTC(2020, 0, 1)

export type NormalizeResult =
  | { ok: true; draft: EnvelopeDraft; timeReplaced?: 'unparseable' | 'too_old' | 'ahead' }
  | { ok: false; rejection: Rejection }

const checkers = Object.fromEntries(
  Object.entries(deviceMessageSchemas).map(([kind, schema]) => [kind, checker(schema)]),
) as Record<DeviceKind, Checker<unknown>>

/** Whether `raw` is a status message the gateway would accept (JSON, the status schema, size). */
export function isDeviceStatus(raw: Buffer): boolean {
  if (raw.length > MAX_PAYLOAD_BYTES) return false
  try {
    return checkers.status.check(JSON.parse(raw.toString('utf8')))
  } catch {
    return false
  }
}

export class Normalizer {
  private readonly devices: Map<string, DeviceConfig>
  private readonly checkpointByTag: Map<string, string>
  private readonly staffGrid: Map<string, string>
  private readonly gridOf: Map<string, string>

  constructor(private readonly config: GatewayConfig) {
    this.devices = new Map(config.devices.map((d) => [d.id, d]))
    this.checkpointByTag = new Map(config.checkpoints.map((c) => [c.tag.toUpperCase(), c.id]))
    this.staffGrid = new Map(config.staff.flatMap((s) => (s.grid !== undefined ? [[s.id, s.grid] as const] : [])))
    const enterpriseGrid = new Map(config.enterprises.flatMap((e) => (e.grid !== undefined ? [[e.id, e.grid] as const] : [])))
    this.gridOf = new Map(
      config.devices.flatMap((d) => {
        const grid = d.grid ?? (d.enterprise !== undefined ? enterpriseGrid.get(d.enterprise) : undefined)
        return grid !== undefined ? [[d.id, grid] as const] : []
      }),
    )
  }

  device(deviceId: string): DeviceConfig | undefined {
    return this.devices.get(deviceId)
  }

  normalize(deviceId: string, kind: DeviceKind, raw: Buffer, receivedAt: number): NormalizeResult {
    const device = this.devices.get(deviceId)
    if (!device) return reject('GW_DEVICE_UNKNOWN', `device "${deviceId}" is not in this office config`)
    if (raw.length > MAX_PAYLOAD_BYTES) {
      return reject('GW_PAYLOAD_TOO_LARGE', `payload is ${raw.length} bytes; the limit is ${MAX_PAYLOAD_BYTES}`)
    }
    let message: unknown
    try {
      message = JSON.parse(raw.toString('utf8'))
    } catch (err) {
      return reject('GW_PAYLOAD_NOT_JSON', `payload is not JSON: ${(err as Error).message}`)
    }
    const check = checkers[kind]
    if (!check.check(message)) {
      const problems = check.problems(message)
      return { ok: false, rejection: { code: 'GW_PAYLOAD_INVALID', message: `invalid ${kind} payload`, problems } }
    }

    const { ts, timeReplaced } = settleTime((message as { ts?: number | string }).ts, receivedAt)
    const draft = this.draft(kind, message, deviceId, ts)
    if (device.enterprise !== undefined) draft.enterprise = device.enterprise
    // A phone's grid is its carrier's; a fixed device's is its own, or its enterprise's.
    const grid = this.staffGrid.get((message as { staff?: string }).staff ?? '') ?? this.gridOf.get(deviceId)
    if (grid !== undefined) draft.grid = grid
    return timeReplaced ? { ok: true, draft, timeReplaced } : { ok: true, draft }
  }

  private draft(kind: DeviceKind, message: unknown, device: string, ts: number): EnvelopeDraft {
    // Built literally per kind (not by spreading a shared frame): this runs for every message.
    const frame = { gateway: this.config.gateway.id, office: this.config.office.id, device, ts }
    switch (kind) {
      case 'reading': {
        const m = message as DeviceReading
        const unit = m.unit ?? this.config.thresholds[m.quantity]?.unit ?? ''
        return { gateway: frame.gateway, office: frame.office, device, ts, kind, payload: { quantity: m.quantity, value: m.value, unit } }
      }
      case 'scan': {
        const m = message as DeviceScan
        const checkpoint = this.checkpointByTag.get(m.tag.toUpperCase())
        return {
          ...frame,
          kind,
          payload: {
            tag: m.tag,
            method: m.method ?? 'nfc',
            ...(checkpoint !== undefined ? { checkpoint } : {}),
            ...(m.staff !== undefined ? { staff: m.staff } : {}),
            ...(m.location !== undefined ? { location: m.location } : {}),
          },
        }
      }
      case 'camera':
        return { ...frame, kind, payload: withoutTs(message as DeviceCamera) }
      case 'report':
        return { ...frame, kind, payload: withoutTs(message as DeviceReport) }
      case 'status':
        return { ...frame, kind, payload: withoutTs(message as DeviceStatus) }
    }
  }
}

function settleTime(
  deviceTs: number | string | undefined,
  receivedAt: number,
): { ts: number; timeReplaced?: 'unparseable' | 'too_old' | 'ahead' } {
  const ts = toEpochMs(deviceTs)
  if (ts === undefined) return { ts: receivedAt, ...(deviceTs === undefined ? {} : { timeReplaced: 'unparseable' as const }) }
  if (ts < MIN_SOURCE_TIME_MS) return { ts: receivedAt, timeReplaced: 'too_old' }
  if (ts > receivedAt + MAX_CLOCK_AHEAD_MS) return { ts: receivedAt, timeReplaced: 'ahead' }
  // Source times keep millisecond precision and nothing finer (docs/contracts.md, "ts").
  return { ts: Math.floor(ts) }
}

function withoutTs<T extends { ts?: unknown }>(message: T): Omit<T, 'ts'> {
  const { ts: _ts, ...rest } = message
  return rest
}

function reject(code: Rejection['code'], message: string): NormalizeResult {
  return { ok: false, rejection: { code, message } }
}
