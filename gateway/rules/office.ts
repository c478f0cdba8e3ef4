/**
 * The office config, indexed for the rules: who is where, which thresholds apply to which device,
 * who handles which alert, and local time. Built once per config (re)load.
 */
import type { Level, Severity } from '../../contracts/envelope.ts'
import type { DeviceConfig, GatewayConfig, RouteConfig, ThresholdConfig } from '../config/schema.ts'

const MINUTE = 60_000

/** The quantity a sensor type reports, for checks that must know before the first reading (stale). */
export const quantityOfType: Partial<Record<DeviceConfig['type'], string>> = {
  'gas-detector': 'gas',
  'co-detector': 'co',
  'smoke-detector': 'smoke',
  'temperature-sensor': 'temperature',
  'pressure-sensor': 'pressure',
}

export class Office {
  readonly devices: Map<string, DeviceConfig>
  readonly routes: Map<string, RouteConfig>
  readonly checkpointNames: Map<string, string>
  private readonly staffGrid: Map<string, string | undefined>
  private readonly enterpriseOf: Map<string, GatewayConfig['enterprises'][number]>
  /** device → quantity → resolved thresholds (nested, so the hot path builds no key strings). */
  private readonly thresholdCache = new Map<string, Map<string, ThresholdConfig | null>>()

  constructor(readonly config: GatewayConfig) {
    this.devices = new Map(config.devices.map((d) => [d.id, d]))
    this.routes = new Map(config.routes.map((r) => [r.id, r]))
    this.checkpointNames = new Map(config.checkpoints.map((c) => [c.id, c.name]))
    this.staffGrid = new Map(config.staff.map((s) => [s.id, s.grid]))
    this.enterpriseOf = new Map(config.enterprises.map((e) => [e.id, e]))
  }

  /**
   * The thresholds for one device's quantity: the office's, then the enterprise's overrides, then
   * the device's. Null when the office sets none for that quantity.
   */
  threshold(deviceId: string, quantity: string): ThresholdConfig | null {
    let byQuantity = this.thresholdCache.get(deviceId)
    if (!byQuantity) this.thresholdCache.set(deviceId, (byQuantity = new Map<string, ThresholdConfig | null>()))
    const cached = byQuantity.get(quantity)
    if (cached !== undefined) return cached
    const base = this.config.thresholds[quantity]
    let resolved: ThresholdConfig | null = null
    if (base) {
      const device = this.devices.get(deviceId)
      const enterprise = device?.enterprise !== undefined ? this.enterpriseOf.get(device.enterprise) : undefined
      resolved = { ...base, ...enterprise?.thresholds?.[quantity], ...device?.thresholds?.[quantity] }
    }
    byQuantity.set(quantity, resolved)
    return resolved
  }

  /** Where a device, or a route (tour alerts are about the route), belongs. */
  frameOf(id: string): { enterprise?: string; grid?: string } {
    const device = this.devices.get(id)
    if (device) {
      const grid = device.grid ?? (device.enterprise !== undefined ? this.enterpriseOf.get(device.enterprise)?.grid : undefined)
      return { ...(device.enterprise !== undefined ? { enterprise: device.enterprise } : {}), ...(grid !== undefined ? { grid } : {}) }
    }
    const route = this.routes.get(id)
    if (route) {
      const first = this.config.checkpoints.find((c) => c.id === route.checkpoints[0])
      return first?.grid !== undefined ? { grid: first.grid } : {}
    }
    return {}
  }

  gridOfStaff(staff: string | undefined): string | undefined {
    return staff === undefined ? undefined : this.staffGrid.get(staff)
  }

  /** Who should handle an alert: by its type, else by its severity. */
  levelOf = (type: string, severity: Severity): Level => this.config.levels.byType[type] ?? this.config.levels.bySeverity[severity]

  /** Local time of day in minutes since midnight, for schedules and camera windows. */
  localMinuteOfDay(ts: number): number {
    const local = ts + this.config.office.utcOffsetMinutes * MINUTE
    return Math.floor((((local % 86_400_000) + 86_400_000) % 86_400_000) / MINUTE)
  }

  /** Epoch ms of local midnight of the day `ts` falls in. */
  localMidnight(ts: number): number {
    const offset = this.config.office.utcOffsetMinutes * MINUTE
    return Math.floor((ts + offset) / 86_400_000) * 86_400_000 - offset
  }

  /** ISO weekday (1 = Monday … 7 = Sunday) of the local day `ts` falls in. */
  localWeekday(ts: number): number {
    const day = new Date(ts + this.config.office.utcOffsetMinutes * MINUTE).getUTCDay()
    return day === 0 ? 7 : day
  }
}

/** `HH:MM` → minutes since midnight. */
export function minutesOf(clock: string): number {
  const [h, m] = clock.split(':') as [string, string]
  return Number(h) * 60 + Number(m)
}

/** Whether a local minute of day lies in `HH:MM-HH:MM` (a window may cross midnight). */
export function inWindow(minuteOfDay: number, window: string): boolean {
  const [from, to] = window.split('-') as [string, string]
  const a = minutesOf(from)
  const b = minutesOf(to)
  return a <= b ? minuteOfDay >= a && minuteOfDay < b : minuteOfDay >= a || minuteOfDay < b
}
