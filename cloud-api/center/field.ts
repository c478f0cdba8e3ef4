/**
 * What the center knows of the field without asking the event store: each gateway's last
 * contact (last seen, backlog it reported, version) and each device's office, enterprise, status
 * and latest reading per quantity. A device is known by office and id: ids are unique within an
 * office's config, and two offices may well both have a `gas-001`.
 *
 * Kept in memory for the ingest path (a Map lookup per envelope) and written to the center
 * database every few seconds, so a restart remembers it. A device's owner (office, enterprise)
 * is written at once when first seen or changed, because scope checks depend on it.
 */
import type { Envelope } from '../../contracts/envelope.ts'
import type { CenterDb } from './db.ts'

export interface DeviceInfo {
  id: string
  office: string
  enterprise?: string
  /**
   * Enterprises the device reported under before `enterprise`, oldest first: a sensor moved to
   * another enterprise stays visible to its former owner's inspectors, for the readings it took
   * while it was theirs (the store filters readings by the enterprise each one was recorded under).
   */
  formerEnterprises?: string[]
  gateway: string
  lastSeen: number
  status?: string
  latest: Record<string, { value: number; unit: string; ts: number }>
}

export interface GatewayHealth {
  id: string
  office: string
  lastSeen: number
  version?: string
  backlog?: number
  batches: number
  envelopes: number
}

const FLUSH_MS = 5000

export class FieldIndex {
  /**
   * Office, then device id. Two levels rather than one joined key: a batch is one office's, so
   * the ingest path looks its office up once and each device by its id as it came, without
   * building (and hashing) a new key string per envelope.
   */
  private readonly devices = new Map<string, Map<string, DeviceInfo>>()
  private readonly gateways = new Map<string, GatewayHealth>()
  /** Devices changed since the last flush, by identity (an entry is never replaced, only changed). */
  private readonly dirtyDevices = new Set<DeviceInfo>()
  private readonly dirtyGateways = new Set<string>()
  private readonly timer: NodeJS.Timeout
  private readonly upsertDevice
  private readonly upsertGateway

  constructor(private readonly db: CenterDb) {
    type Row = { id: string; office: string; enterprise: string | null; former_enterprises: string; gateway: string; last_seen: number; status: string | null; latest: string }
    for (const r of db.prepare<[], Row>('SELECT * FROM devices').all()) {
      const former = JSON.parse(r.former_enterprises) as string[]
      this.officeDevices(r.office).set(r.id, {
        id: r.id,
        office: r.office,
        ...(r.enterprise !== null ? { enterprise: r.enterprise } : {}),
        ...(former.length > 0 ? { formerEnterprises: former } : {}),
        gateway: r.gateway,
        lastSeen: r.last_seen,
        ...(r.status !== null ? { status: r.status } : {}),
        latest: JSON.parse(r.latest) as DeviceInfo['latest'],
      })
    }
    for (const r of db.prepare<[], { id: string; office: string; last_seen: number; version: string | null; backlog: number | null; batches: number; envelopes: number }>('SELECT * FROM gateway_health').all()) {
      this.gateways.set(r.id, {
        id: r.id,
        office: r.office,
        lastSeen: r.last_seen,
        ...(r.version !== null ? { version: r.version } : {}),
        ...(r.backlog !== null ? { backlog: r.backlog } : {}),
        batches: r.batches,
        envelopes: r.envelopes,
      })
    }
    this.upsertDevice = db.prepare(
      `INSERT INTO devices (id, office, enterprise, former_enterprises, gateway, last_seen, status, latest)
       VALUES (@id, @office, @enterprise, @formerEnterprises, @gateway, @lastSeen, @status, @latest)
       ON CONFLICT (office, id) DO UPDATE SET enterprise = excluded.enterprise, former_enterprises = excluded.former_enterprises, gateway = excluded.gateway,
         last_seen = excluded.last_seen, status = excluded.status, latest = excluded.latest`,
    )
    this.upsertGateway = db.prepare(
      `INSERT INTO gateway_health (id, office, last_seen, version, backlog, batches, envelopes) VALUES (@id, @office, @lastSeen, @version, @backlog, @batches, @envelopes)
       ON CONFLICT (id) DO UPDATE SET office = excluded.office, last_seen = excluded.last_seen, version = excluded.version,
         backlog = excluded.backlog, batches = excluded.batches, envelopes = excluded.envelopes`,
    )
    this.timer = setInterval(() => this.flush(), FLUSH_MS)
    this.timer.unref()
  }

  /** A batch arrived from a gateway (called for every accepted ingest). */
  noteBatch(gateway: { id: string; office: string }, at: number, envelopes: number, reported: { version?: string | undefined; backlog?: number | undefined }): void {
    // Health kept for another office is another registration's (the id was removed and added
    // again, perhaps by the CLI while this process ran): it starts over rather than carry that
    // office's traffic into this one's district.
    const kept = this.gateways.get(gateway.id)
    const g = kept !== undefined && kept.office === gateway.office ? kept : { id: gateway.id, office: gateway.office, lastSeen: at, batches: 0, envelopes: 0 }
    g.lastSeen = at
    g.batches++
    g.envelopes += envelopes
    if (reported.version !== undefined) g.version = reported.version
    if (reported.backlog !== undefined) g.backlog = reported.backlog
    this.gateways.set(gateway.id, g)
    this.dirtyGateways.add(gateway.id)
  }

  noteEnvelopes(envelopes: readonly Envelope[]): void {
    let owners = false
    let office: string | undefined
    let devices: Map<string, DeviceInfo> | undefined
    for (const e of envelopes) {
      if (e.office !== office || devices === undefined) {
        office = e.office
        devices = this.officeDevices(office)
      }
      let d = devices.get(e.device)
      if (!d) {
        d = { id: e.device, office: e.office, gateway: e.gateway, lastSeen: e.ts, latest: {}, ...(e.enterprise !== undefined ? { enterprise: e.enterprise } : {}) }
        devices.set(e.device, d)
        owners = true
      } else if (e.enterprise !== undefined && d.enterprise !== e.enterprise) {
        noteOwner(d, e.enterprise, e.gateway, e.ts)
        owners = true
      }
      if (e.ts > d.lastSeen) d.lastSeen = e.ts
      // Latest values are the current owner's: not a reading a former owner's backlog brings.
      if (e.kind === 'reading' && (e.enterprise === undefined || e.enterprise === d.enterprise)) {
        const prev = d.latest[e.payload.quantity]
        if (!prev || prev.ts <= e.ts) d.latest[e.payload.quantity] = { value: e.payload.value, unit: e.payload.unit, ts: e.ts }
      } else if (e.kind === 'status') {
        d.status = e.payload.state
      }
      this.dirtyDevices.add(d)
    }
    // Scope checks read device owners; make a new device's owner durable with its first data.
    if (owners) this.flush()
  }

  private officeDevices(office: string): Map<string, DeviceInfo> {
    let devices = this.devices.get(office)
    if (!devices) {
      devices = new Map()
      this.devices.set(office, devices)
    }
    return devices
  }

  device(office: string, id: string): DeviceInfo | undefined {
    return this.devices.get(office)?.get(id)
  }

  /** Every device with this id, one per office that has one. */
  devicesNamed(id: string): DeviceInfo[] {
    const named: DeviceInfo[] = []
    for (const devices of this.devices.values()) {
      const d = devices.get(id)
      if (d) named.push(d)
    }
    return named
  }

  allDevices(): DeviceInfo[] {
    return [...this.devices.values()].flatMap((devices) => [...devices.values()])
  }

  /** A gateway was removed: its health goes with it (the database row is removed with the gateway). */
  forgetGateway(id: string): void {
    this.gateways.delete(id)
    this.dirtyGateways.delete(id)
  }

  allGateways(): GatewayHealth[] {
    return [...this.gateways.values()]
  }

  flush(): void {
    if (this.dirtyDevices.size === 0 && this.dirtyGateways.size === 0) return
    this.db.transaction(() => {
      for (const d of this.dirtyDevices) {
        this.upsertDevice.run({ id: d.id, office: d.office, enterprise: d.enterprise ?? null, formerEnterprises: JSON.stringify(d.formerEnterprises ?? []), gateway: d.gateway, lastSeen: d.lastSeen, status: d.status ?? null, latest: JSON.stringify(d.latest) })
      }
      for (const id of this.dirtyGateways) {
        const g = this.gateways.get(id)!
        this.upsertGateway.run({ ...g, version: g.version ?? null, backlog: g.backlog ?? null })
      }
    })()
    this.dirtyDevices.clear()
    this.dirtyGateways.clear()
  }

  close(): void {
    clearInterval(this.timer)
    this.flush()
  }
}

/**
 * An envelope names an enterprise other than the device's current one. Changed in place: the
 * dirty set and any caller holding this entry see the new owner.
 * - Newer than anything the device sent: the device has moved. The old owner keeps the history
 *   it had (formerEnterprises), and the latest values, measured for it, are not the new owner's.
 * - Older (a backlog replayed after the move, or an alert that went ahead of it on the
 *   gateway's urgent lane): the device was that enterprise's then. It is a former owner, and the
 *   current one stays.
 */
function noteOwner(d: DeviceInfo, enterprise: string, gateway: string, ts: number): void {
  const former = new Set(d.formerEnterprises)
  if (ts >= d.lastSeen) {
    if (d.enterprise !== undefined) former.add(d.enterprise)
    d.enterprise = enterprise
    d.gateway = gateway
    d.latest = {}
  } else {
    former.add(enterprise)
  }
  if (d.enterprise !== undefined) former.delete(d.enterprise)
  if (former.size > 0) d.formerEnterprises = [...former]
  else delete d.formerEnterprises
}
