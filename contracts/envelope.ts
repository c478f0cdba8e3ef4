/**
 * The canonical event envelope: the one shape every hop after the gateway's inputs speaks.
 * docs/contracts.md explains each field; this file is the executable form of that page.
 *
 * Two promises live here and nowhere else:
 * - `id` is `${gateway}:${seq}` where seq comes from the gateway outbox's monotonic counter,
 *   never from a clock, so a replay after a crash carries the same id and the cloud can dedupe.
 * - `ts` is the source time in Unix epoch milliseconds, stamped once at the gateway and stored
 *   inside the outbox row, so a replay carries the same time and an InfluxDB point stays the
 *   same point (InfluxDB identifies a point by measurement, tag set and timestamp).
 */
import Type, { type Static } from 'typebox'

/** Identifiers of offices, gateways, devices, enterprises, checkpoints and staff. */
export const Ident = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' })

/** Unix epoch milliseconds, from 2000-01-01 to 2100-01-01: anything outside is a broken clock. */
export const EpochMs = Type.Integer({ minimum: 946_684_800_000, maximum: 4_102_444_800_000 })

export const EnvelopeKinds = ['reading', 'aggregate', 'scan', 'camera', 'report', 'status', 'alert', 'incident', 'gap'] as const
export type EnvelopeKind = (typeof EnvelopeKinds)[number]

export const Severities = ['critical', 'major', 'minor'] as const
export type Severity = (typeof Severities)[number]
export const severityRank: Record<Severity, number> = { minor: 1, major: 2, critical: 3 }

/** Who should handle it: the grid's staff, the community, or the street office itself. */
export const Levels = ['grid', 'community', 'street'] as const
export type Level = (typeof Levels)[number]

const Text = (maxLength: number) => Type.String({ maxLength })

/** Where a phone was (WGS 84 degrees, as phones report it; GCJ-02 conversion is the map's job). */
export const Location = Type.Object(
  { lat: Type.Number({ minimum: -90, maximum: 90 }), lon: Type.Number({ minimum: -180, maximum: 180 }) },
  { additionalProperties: false },
)

export const ReadingPayload = Type.Object(
  {
    /** What is measured: gas (combustible, %LEL), co (ppm), smoke, temperature (°C), pressure (kPa), ... */
    quantity: Ident,
    value: Type.Number(),
    unit: Text(16),
  },
  { additionalProperties: false },
)

/** One minute of one device's quantity, for history at the center without every raw reading. */
export const AggregatePayload = Type.Object(
  {
    quantity: Ident,
    unit: Text(16),
    /** Window, epoch ms: [from, to). The envelope's ts is `from`. */
    from: EpochMs,
    to: EpochMs,
    min: Type.Number(),
    max: Type.Number(),
    mean: Type.Number(),
    count: Type.Integer({ minimum: 1 }),
  },
  { additionalProperties: false },
)

export const ScanPayload = Type.Object(
  {
    tag: Type.String({ minLength: 1, maxLength: 64 }),
    /** The checkpoint the tag belongs to; absent when the gateway does not know the tag. */
    checkpoint: Type.Optional(Ident),
    staff: Type.Optional(Ident),
    method: Type.Union([Type.Literal('nfc'), Type.Literal('reader'), Type.Literal('wand'), Type.Literal('qr')]),
    /** Where the phone was when it read the tag; a fixed reader or a wand has none. */
    location: Type.Optional(Location),
  },
  { additionalProperties: false },
)

export const CameraPayload = Type.Object(
  {
    /** Event type as the camera names it, normalised: intrusion, smoke, fire, crowding, loitering, ... */
    event: Ident,
    confidence: Type.Number({ minimum: 0, maximum: 1 }),
    channel: Type.Optional(Type.Integer({ minimum: 0, maximum: 4096 })),
    region: Type.Optional(Text(128)),
    snapshot: Type.Optional(Text(512)),
  },
  { additionalProperties: false },
)

export const ReportPayload = Type.Object(
  {
    type: Type.Union([Type.Literal('sos'), Type.Literal('problem')]),
    category: Type.Optional(Ident),
    text: Type.Optional(Text(2000)),
    staff: Type.Optional(Ident),
    /** Reference to a photo the phone uploaded (URL or object key). */
    photo: Type.Optional(Text(512)),
    location: Type.Optional(Location),
  },
  { additionalProperties: false },
)

export const StatusPayload = Type.Object(
  {
    state: Type.Union([Type.Literal('online'), Type.Literal('offline'), Type.Literal('fault')]),
    reason: Type.Optional(Text(256)),
  },
  { additionalProperties: false },
)

export const AlertPayload = Type.Object(
  {
    /** Id of the envelope that raised the alert; every later event of the same alert repeats it. */
    alertId: Type.String({ minLength: 3, maxLength: 96 }),
    state: Type.Union([Type.Literal('raised'), Type.Literal('updated'), Type.Literal('cleared')]),
    /** Rule that produced it, dotted: sensor.threshold, camera.intrusion, patrol.sos, patrol.unknown_tag, ... */
    type: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z][a-z0-9_]*(\\.[a-z0-9_]+)*$' }),
    severity: Type.Enum([...Severities]),
    message: Text(512),
    /** Id of the envelope whose data triggered this event. */
    cause: Type.Optional(Type.String({ maxLength: 96 })),
    quantity: Type.Optional(Ident),
    value: Type.Optional(Type.Number()),
    unit: Type.Optional(Text(16)),
    threshold: Type.Optional(Type.Number()),
    peak: Type.Optional(Type.Number()),
    /** Who should handle it (config `levels`). */
    level: Type.Optional(Type.Enum([...Levels])),
    /** For a storm alert: how many alerts were held back so far. */
    suppressed: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
)

/** A problem reported from the field, for the center to dispatch (issue 7 gives it a lifecycle). */
export const IncidentPayload = Type.Object(
  {
    /** Id of this incident's envelope; the center keys its lifecycle by it. */
    incidentId: Type.String({ minLength: 3, maxLength: 96 }),
    category: Ident,
    description: Text(2000),
    reporter: Type.Optional(Ident),
    location: Type.Optional(Location),
    photo: Type.Optional(Text(512)),
    level: Type.Enum([...Levels]),
    /** Id of the report envelope it came from. */
    cause: Type.Optional(Type.String({ maxLength: 96 })),
  },
  { additionalProperties: false },
)

/**
 * A data-gap record: the gateway had to drop data it had accepted (its disk quota was reached, or
 * the data outlived its class's TTL while the center was unreachable). One record per device and
 * eviction, so the center can see exactly what is missing. Its `ts` is the time of the eviction.
 */
export const GapPayload = Type.Object(
  {
    class: Type.Enum(['telemetry', 'aggregate', 'event']),
    reason: Type.Enum(['quota', 'ttl']),
    /** Source times of the first and last dropped envelope. */
    from: EpochMs,
    to: EpochMs,
    count: Type.Integer({ minimum: 1 }),
    kinds: Type.Array(Ident, { minItems: 1, maxItems: 8 }),
  },
  { additionalProperties: false },
)

export const payloadSchemas = {
  reading: ReadingPayload,
  aggregate: AggregatePayload,
  scan: ScanPayload,
  camera: CameraPayload,
  report: ReportPayload,
  status: StatusPayload,
  alert: AlertPayload,
  incident: IncidentPayload,
  gap: GapPayload,
} as const

export type ReadingPayload = Static<typeof ReadingPayload>
export type ScanPayload = Static<typeof ScanPayload>
export type CameraPayload = Static<typeof CameraPayload>
export type ReportPayload = Static<typeof ReportPayload>
export type StatusPayload = Static<typeof StatusPayload>
export type AlertPayload = Static<typeof AlertPayload>
export type AggregatePayload = Static<typeof AggregatePayload>
export type IncidentPayload = Static<typeof IncidentPayload>
export type GapPayload = Static<typeof GapPayload>

/**
 * The envelope without its payload's shape: what Fastify validates for every element of an
 * ingest batch. The payload is then checked against `payloadSchemas[kind]` (see validate.ts),
 * which names the exact path of a problem instead of the wall of errors a 6-way union gives.
 */
export const EnvelopeBase = Type.Object(
  {
    id: Type.String({ minLength: 3, maxLength: 96, pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*:[0-9]{1,16}$' }),
    seq: Type.Integer({ minimum: 1 }),
    gateway: Ident,
    office: Ident,
    device: Ident,
    enterprise: Type.Optional(Ident),
    /** The grid the device (or the patrol staff) belongs to, from the office config. */
    grid: Type.Optional(Ident),
    kind: Type.Enum([...EnvelopeKinds]),
    ts: EpochMs,
    payload: Type.Object({}),
  },
  { additionalProperties: false },
)
export type EnvelopeBase = Static<typeof EnvelopeBase>

interface EnvelopeOf<K extends EnvelopeKind, P> extends Omit<EnvelopeBase, 'kind' | 'payload'> {
  kind: K
  payload: P
}
export type ReadingEnvelope = EnvelopeOf<'reading', ReadingPayload>
export type AggregateEnvelope = EnvelopeOf<'aggregate', AggregatePayload>
export type IncidentEnvelope = EnvelopeOf<'incident', IncidentPayload>
export type ScanEnvelope = EnvelopeOf<'scan', ScanPayload>
export type CameraEnvelope = EnvelopeOf<'camera', CameraPayload>
export type ReportEnvelope = EnvelopeOf<'report', ReportPayload>
export type StatusEnvelope = EnvelopeOf<'status', StatusPayload>
export type AlertEnvelope = EnvelopeOf<'alert', AlertPayload>
export type GapEnvelope = EnvelopeOf<'gap', GapPayload>
export type Envelope =
  | ReadingEnvelope
  | AggregateEnvelope
  | IncidentEnvelope
  | ScanEnvelope
  | CameraEnvelope
  | ReportEnvelope
  | StatusEnvelope
  | AlertEnvelope
  | GapEnvelope

/** An envelope before the outbox has given it a sequence number. */
export type EnvelopeDraft = Envelope extends infer E ? (E extends Envelope ? Omit<E, 'id' | 'seq'> : never) : never

export function envelopeId(gateway: string, seq: number): string {
  return `${gateway}:${seq}`
}
