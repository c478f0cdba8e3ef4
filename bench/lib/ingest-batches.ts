/**
 * Gateway-sized ingest batches as a street-office gateway sends them: the outbox's committed JSON
 * of each envelope (gateway/outbox/serialize.ts), joined into `{"envelopes":[...]}` and gzip'd
 * when large, exactly as gateway/uplink/forwarder.ts `send()` builds its body. Mostly readings,
 * with the minute aggregates, patrol scans, device status, camera events, alerts, reports and
 * incidents a real office mixes in.
 *
 * Every batch also carries its line protocol (cloud-api/store/line-protocol.ts), the very lines
 * the API writes for it, so a direct write of the same points to InfluxDB can be compared.
 */
import { gzipSync } from 'node:zlib'
import type { Envelope, EnvelopeDraft } from '../../contracts/envelope.ts'
import { envelopeBodies } from '../../cloud-api/store/line-protocol.ts'
import { envelopeJson } from '../../gateway/outbox/serialize.ts'

export interface BenchGateway {
  id: string
  office: string
  token: string
}

export interface IngestBatch {
  gateway: BenchGateway
  /** The request body: gzip'd `{"envelopes":[...]}`. */
  gzip: Buffer
  jsonBytes: number
  /** The same points as line protocol, one body (a batch is below the store's 5,000-line chunk). */
  lines: Buffer
  envelopes: number
  /** Envelopes per kind, to check the store's counts afterwards. */
  kinds: Record<string, number>
}

/**
 * Per 2,000 envelopes: what a busy office's batch holds besides readings. Alerts are few (a
 * gateway's storm guard holds an office to about ten a minute), but most batches carry some.
 */
const MIX: [Envelope['kind'], number][] = [
  ['aggregate', 40],
  ['scan', 30],
  ['status', 20],
  ['camera', 14],
  ['alert', 4],
  ['report', 4],
  ['incident', 1],
]

const QUANTITIES = [
  { quantity: 'gas', unit: '%LEL', base: 8, spread: 6 },
  { quantity: 'co', unit: 'ppm', base: 12, spread: 10 },
  { quantity: 'temperature', unit: '°C', base: 24, spread: 8 },
  { quantity: 'smoke', unit: 'dB/m', base: 0.02, spread: 0.05 },
]
const GRIDS = ['g-laojie-1', 'g-laojie-2', 'g-quanyuan-1']
const ENTERPRISES = ['ent-quanyuan-chem', 'ent-laojie-canteen', undefined, undefined]
const DEVICES_PER_GATEWAY = 250

/** A deterministic PRNG, so runs are comparable. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    return (s >>> 0) / 4_294_967_296
  }
}

/** Makes batches for a set of gateways, each with its own monotonic sequence. */
export class BatchMaker {
  private readonly seqs = new Map<string, number>()
  private readonly random: () => number
  /** Source time advances 1 ms per envelope from here (recent, inside any retention policy). */
  private clock = Date.now() - 6 * 3_600_000

  constructor(
    readonly gateways: BenchGateway[],
    readonly envelopesPerBatch: number,
    seed = 42,
  ) {
    this.random = rng(seed)
  }

  /** `count` batches, the gateways taking turns. */
  make(count: number): IngestBatch[] {
    const out: IngestBatch[] = []
    for (let i = 0; i < count; i++) out.push(this.batch(this.gateways[i % this.gateways.length]))
    return out
  }

  private batch(gateway: BenchGateway): IngestBatch {
    const kinds: Record<string, number> = {}
    const plan: Envelope['kind'][] = []
    const scale = this.envelopesPerBatch / 2000
    for (const [kind, n] of MIX) for (let i = 0; i < Math.round(n * scale); i++) plan.push(kind)
    while (plan.length < this.envelopesPerBatch) plan.push('reading')
    // Interleaved as an outbox lease would return them (by sequence, kinds mixed).
    for (let i = plan.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1))
      ;[plan[i], plan[j]] = [plan[j], plan[i]]
    }
    const envelopes = plan.map((kind) => {
      kinds[kind] = (kinds[kind] ?? 0) + 1
      return this.stamp(gateway, this.draft(gateway, kind))
    })
    const json = Buffer.from(`{"envelopes":[${envelopes.map(envelopeJson).join(',')}]}`)
    const [lines] = envelopeBodies(envelopes, 5000)
    return { gateway, gzip: gzipSync(json), jsonBytes: json.length, lines: Buffer.from(lines.body), envelopes: envelopes.length, kinds }
  }

  private stamp(gateway: BenchGateway, draft: EnvelopeDraft): Envelope {
    const seq = (this.seqs.get(gateway.id) ?? 0) + 1
    this.seqs.set(gateway.id, seq)
    return { id: `${gateway.id}:${seq}`, seq, ...draft }
  }

  private draft(gateway: BenchGateway, kind: Envelope['kind']): EnvelopeDraft {
    const r = this.random
    const n = Math.floor(r() * DEVICES_PER_GATEWAY)
    const frame = {
      gateway: gateway.id,
      office: gateway.office,
      // Device ids are unique across offices, as a center's are.
      device: `${gateway.office}-dev-${String(n).padStart(4, '0')}`,
      ...(ENTERPRISES[n % ENTERPRISES.length] ? { enterprise: ENTERPRISES[n % ENTERPRISES.length] } : {}),
      grid: GRIDS[n % GRIDS.length],
      ts: this.clock++,
    }
    const q = QUANTITIES[n % QUANTITIES.length]
    const value = Math.round((q.base + r() * q.spread) * 100) / 100
    switch (kind) {
      case 'reading':
        return { ...frame, kind, payload: { quantity: q.quantity, value, unit: q.unit } }
      case 'aggregate':
        return {
          ...frame,
          kind,
          payload: { quantity: q.quantity, unit: q.unit, from: frame.ts, to: frame.ts + 60_000, min: value - 1, max: value + 1.5, mean: value, count: 12 },
        }
      case 'scan':
        return { ...frame, kind, payload: { tag: `04A1B2C3D4E5F${n % 10}`, checkpoint: `cp-0${(n % 4) + 1}`, staff: 'staff-zhang-wei', method: 'nfc' } }
      case 'status':
        return { ...frame, kind, payload: r() < 0.5 ? { state: 'online' } : { state: 'offline', reason: 'no message for 300 s' } }
      case 'camera':
        return { ...frame, kind, payload: { event: 'intrusion', confidence: Math.round(r() * 100) / 100, channel: 1, region: 'north gate' } }
      case 'alert':
        return {
          ...frame,
          kind,
          payload: {
            alertId: `${gateway.id}:${n + 1}`,
            state: 'raised',
            type: 'sensor.threshold',
            severity: 'major',
            message: `可燃气体 ${value} %LEL above 50 at dev-${n}`,
            cause: `${gateway.id}:${n + 2}`,
            quantity: 'gas',
            value,
            unit: '%LEL',
            threshold: 50,
            peak: value,
            level: 'grid',
          },
        }
      case 'report':
        return { ...frame, kind, payload: { type: 'problem', category: 'dumping', text: '老街东口 "north gate": rubbish, again', staff: 'staff-li-na', location: { lat: 32.04, lon: 118.63 } } }
      case 'incident':
        return {
          ...frame,
          kind,
          payload: { incidentId: `${gateway.id}:${n + 3}`, category: 'dumping', description: 'Rubbish dumped at the east gate', reporter: 'staff-li-na', level: 'grid' },
        }
      case 'gap':
        return { ...frame, kind, payload: { class: 'telemetry', reason: 'ttl', from: frame.ts - 60_000, to: frame.ts, count: 10, kinds: ['reading'] } }
    }
  }
}
