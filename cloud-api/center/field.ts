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

type Latest = Record<string, { value: number; unit: string; ts: number }>

/** Where an envelope stands in its gateway's order: the outbox sequence is the order it accepted them. */
export interface OwnerStatement {
  gateway: string
  seq: number
  ts: number
}

export interface DeviceInfo {
  id: string
  office: string
  enterprise?: string
  /**
   * Enterprises the device belonged to before `enterprise`: when it stopped being theirs (the
   * newest time an envelope said so) and what it last measured for them. A sensor moved to another
   * enterprise stays visible to its former owner's inspectors, for the readings it took while it
   * was theirs (the store filters readings by the enterprise each was recorded under).
   */
  former?: Record<string, { until: number; latest: Latest }>
  /**
   * The newest envelope that said who owns the device: what tells a move from a late backlog of
   * the old owner (see `newer`).
   */
  owner: OwnerStatement
  gateway: string
  lastSeen: number
  status?: string
  latest: Latest
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
    type Row = { id: string; office: string; enterprise: string | null; former: string; owner_gateway: string; owner_seq: number; owner_ts: number; gateway: string; last_seen: number; status: string | null; latest: string }
    for (const r of db.prepare<[], Row>('SELECT * FROM devices').all()) {
      const former = JSON.parse(r.former) as NonNullable<DeviceInfo['former']>
      this.officeDevices(r.office).set(r.id, {
        id: r.id,
        office: r.office,
        ...(r.enterprise !== null ? { enterprise: r.enterprise } : {}),
        ...(Object.keys(former).length > 0 ? { former } : {}),
        owner: { gateway: r.owner_gateway, seq: r.owner_seq, ts: r.owner_ts },
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
      `INSERT INTO devices (id, office, enterprise, former, owner_gateway, owner_seq, owner_ts, gateway, last_seen, status, latest)
       VALUES (@id, @office, @enterprise, @former, @ownerGateway, @ownerSeq, @ownerTs, @gateway, @lastSeen, @status, @latest)
       ON CONFLICT (office, id) DO UPDATE SET enterprise = excluded.enterprise, former = excluded.former, owner_gateway = excluded.owner_gateway,
         owner_seq = excluded.owner_seq, owner_ts = excluded.owner_ts, gateway = excluded.gateway,
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
      const stated = statedOwner(e, d?.owner)
      if (!d) {
        const owner = stated !== undefined ? { gateway: e.gateway, seq: e.seq, ts: e.ts } : { gateway: e.gateway, seq: 0, ts: 0 }
        d = { id: e.device, office: e.office, gateway: e.gateway, lastSeen: e.ts, owner, latest: {}, ...(e.enterprise !== undefined ? { enterprise: e.enterprise } : {}) }
        devices.set(e.device, d)
        owners = true
      }
      // Whether this envelope speaks for the device's current owner: only then does it set the
      // latest values and the status that owner's inspectors see.
      let current = true
      if (stated !== undefined) {
        if (newer(e, d.owner)) {
          if (stated !== (d.enterprise ?? null)) {
            moveTo(d, stated, e.gateway)
            owners = true
          }
          // In place: this runs for nearly every envelope of the ingest path.
          d.owner.gateway = e.gateway
          d.owner.seq = e.seq
          d.owner.ts = e.ts
        } else if (stated !== (d.enterprise ?? null)) {
          current = false
          if (stated !== null) owners = noteFormer(d, stated, e) || owners
        }
      }
      if (e.ts > d.lastSeen) d.lastSeen = e.ts
      if (current && e.kind === 'reading') {
        const prev = d.latest[e.payload.quantity]
        if (!prev || prev.ts <= e.ts) d.latest[e.payload.quantity] = { value: e.payload.value, unit: e.payload.unit, ts: e.ts }
      } else if (current && e.kind === 'status') {
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
        this.upsertDevice.run({ id: d.id, office: d.office, enterprise: d.enterprise ?? null, former: JSON.stringify(d.former ?? {}), ownerGateway: d.owner.gateway, ownerSeq: d.owner.seq, ownerTs: d.owner.ts, gateway: d.gateway, lastSeen: d.lastSeen, status: d.status ?? null, latest: JSON.stringify(d.latest) })
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

/** The device's owner and its former ones: whose readings it holds. */
export function ownersOf(d: DeviceInfo): (string | undefined)[] {
  return [d.enterprise, ...Object.keys(d.former ?? {})]
}

/**
 * Who the envelope says owns its device: an enterprise; `null` for none, from the kinds the
 * gateway always stamps with the device's configured owner (a sensor taken off its enterprise
 * reads with none); `undefined` when it does not say.
 *
 * What the gateway stamped with the configuration in force says so: what the device sent, and an
 * alert when it is raised (a silent sensor moved by a reload may say nothing else, and its
 * stale-sensor alarm is raised under the new owner). An alert's update or clear and a gap record
 * speak of earlier readings and the owner they had: a move clears the former owner's alarm
 * after the reading that showed the move. Taken as statements, they moved the device back to its
 * former owner until its next reading (up to the forwarding interval).
 *
 * A minute aggregate is stamped when its minute closes, after the readings that follow it, so its
 * place in the gateway's sequence says nothing about the move: it states its owner only if its
 * minute starts no earlier than `last`, the statement it would follow (newer() checks the
 * sequence too). So a former owner's last minute does not move the device back, while a backlog,
 * which sends aggregates ahead of the readings they summarise, still moves it at once.
 */
function statedOwner(e: Envelope, last: OwnerStatement | undefined): string | null | undefined {
  if (e.kind === 'gap' || (e.kind === 'alert' && e.payload.state !== 'raised')) return undefined
  if (e.kind === 'aggregate' && last !== undefined && e.ts < last.ts) return undefined
  if (e.enterprise !== undefined) return e.enterprise
  return e.kind === 'reading' || e.kind === 'aggregate' || e.kind === 'status' ? null : undefined
}

/**
 * Whether an envelope is newer than the device's last statement of its owner. From the same
 * gateway, by outbox sequence: the order the gateway accepted them, which is the order its
 * configuration said who owns the device, whatever lane they came by (alerts go ahead of a
 * backlog) and whatever the device's clock says. From another gateway, by time, as nothing
 * else orders two gateways; a tie keeps the current owner.
 */
function newer(e: Envelope, last: OwnerStatement): boolean {
  return e.gateway === last.gateway ? e.seq > last.seq : e.ts > last.ts
}

/**
 * The device has moved (to another enterprise, or to none). Changed in place, so the dirty set
 * and any caller holding this entry see the new owner. The old owner becomes a former one with
 * what the device last measured for it; the new owner starts without latest values or status.
 */
function moveTo(d: DeviceInfo, owner: string | null, gateway: string): void {
  const former = { ...d.former }
  if (d.enterprise !== undefined) {
    // A device first heard of through what states no owner (an aggregate ahead of its readings in
    // a backlog) has no owner time: then the last time it was heard of at all.
    const until = Math.max(d.owner.ts, ...Object.values(d.latest).map((l) => l.ts))
    former[d.enterprise] = { until: until > 0 ? until : d.lastSeen, latest: d.latest }
  }
  if (owner !== null) {
    delete former[owner]
    d.enterprise = owner
  } else {
    delete d.enterprise
  }
  if (Object.keys(former).length > 0) d.former = former
  else delete d.former
  d.gateway = gateway
  d.latest = {}
  delete d.status
}

/**
 * An envelope older than the current owner's (a backlog replayed after a move, behind an alert
 * that went ahead on the gateway's urgent lane) names another enterprise: the device was that
 * enterprise's then. Returns whether that changed who may see the device.
 */
function noteFormer(d: DeviceInfo, enterprise: string, e: Envelope): boolean {
  const known = d.former?.[enterprise]
  const entry = known ?? { until: e.ts, latest: {} }
  if (e.ts > entry.until) entry.until = e.ts
  if (e.kind === 'reading') {
    const prev = entry.latest[e.payload.quantity]
    if (!prev || prev.ts <= e.ts) entry.latest[e.payload.quantity] = { value: e.payload.value, unit: e.payload.unit, ts: e.ts }
  }
  if (known) return false
  d.former = { ...d.former, [enterprise]: entry }
  return true
}
