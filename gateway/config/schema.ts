/**
 * The street-office gateway's configuration: one file describes one office (docs/configuration.md).
 */
import Type, { type Static } from 'typebox'
import { Ident, Severities } from '../../contracts/envelope.ts'

const Port = Type.Integer({ minimum: 0, maximum: 65535 })
const SeverityName = Type.Enum([...Severities])

export const DeviceTypes = ['gas-detector', 'co-detector', 'smoke-detector', 'temperature-sensor', 'pressure-sensor', 'patrol-phone', 'camera'] as const

const Device = Type.Object(
  {
    id: Ident,
    type: Type.Enum([...DeviceTypes]),
    name: Type.Optional(Type.String({ maxLength: 128 })),
    /** The enterprise whose premises the sensor watches; absent for patrol phones and street cameras. */
    enterprise: Type.Optional(Ident),
    /** MQTT password as a scrypt hash (`npm run gateway -- hash-secret`). Never the password itself. */
    secret: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: false },
)

const Enterprise = Type.Object({ id: Ident, name: Type.String({ maxLength: 128 }) }, { additionalProperties: false })

const Checkpoint = Type.Object(
  {
    id: Ident,
    /** The NFC/RFID tag id as the reader reports it (hex, case-insensitive). */
    tag: Type.String({ minLength: 1, maxLength: 64 }),
    name: Type.String({ maxLength: 128 }),
  },
  { additionalProperties: false },
)

/**
 * Two ascending alarm levels per quantity, as Chinese gas detectors name them: 低报 (low alarm) and
 * 高报 (high alarm). An alarm clears once the value falls below `low - hysteresis`.
 */
const Threshold = Type.Object(
  {
    unit: Type.String({ maxLength: 16 }),
    low: Type.Number(),
    high: Type.Number(),
    hysteresis: Type.Number({ minimum: 0 }),
  },
  { additionalProperties: false },
)

export const GatewayConfigSchema = Type.Object(
  {
    gateway: Type.Object(
      {
        id: Ident,
        /** Where the outbox and alarm state live. Relative paths are relative to the working directory. */
        dataDir: Type.String({ minLength: 1 }),
      },
      { additionalProperties: false },
    ),
    office: Type.Object({ id: Ident, name: Type.String({ maxLength: 128 }) }, { additionalProperties: false }),
    broker: Type.Object(
      {
        tcp: Type.Union([Type.Object({ host: Type.String(), port: Port }, { additionalProperties: false }), Type.Null()]),
        /** Lab and interop use only, like Mosquitto 2's `allow_anonymous`: logged as a warning at start. */
        allowAnonymous: Type.Boolean(),
      },
      { additionalProperties: false },
    ),
    /** The gateway's own HTTP endpoint: /healthz, /readyz, /metrics. null turns it off. */
    http: Type.Union([Type.Object({ host: Type.String(), port: Port }, { additionalProperties: false }), Type.Null()]),
    uplink: Type.Object(
      {
        url: Type.String({ pattern: '^https?://' }),
        /** The gateway's token for the cloud API. Prefer the GRIDWATCH_UPLINK_TOKEN environment variable. */
        token: Type.Optional(Type.String({ minLength: 16 })),
        batchMax: Type.Integer({ minimum: 1, maximum: 2000 }),
        /** How long telemetry may wait to fill a batch. Alerts never wait. */
        lingerMs: Type.Integer({ minimum: 0, maximum: 60_000 }),
        timeoutMs: Type.Integer({ minimum: 100, maximum: 120_000 }),
        /** Pace of a backlog replay, so a returning center is not flooded. Alerts are never paced. */
        maxEnvelopesPerSecond: Type.Integer({ minimum: 1 }),
        /** Cap on retry delays: the first retry after the center recovers comes within this. */
        maxBackoffMs: Type.Integer({ minimum: 100, maximum: 300_000 }),
        breakerFailures: Type.Integer({ minimum: 1 }),
        breakerHalfOpenMs: Type.Integer({ minimum: 100, maximum: 300_000 }),
      },
      { additionalProperties: false },
    ),
    outbox: Type.Object(
      {
        /** Disk quota for buffered data. Telemetry is evicted first, alerts never (docs/durability.md). */
        quotaMb: Type.Number({ minimum: 0 }),
        /** Maximum age per class while undelivered, in hours; 0 keeps forever. Alerts never expire. */
        ttlHours: Type.Object(
          { event: Type.Number({ minimum: 0 }), aggregate: Type.Number({ minimum: 0 }), telemetry: Type.Number({ minimum: 0 }) },
          { additionalProperties: false },
        ),
        /** Rows per group commit at most. */
        maxBatchRows: Type.Integer({ minimum: 1, maximum: 10_000 }),
      },
      { additionalProperties: false },
    ),
    enterprises: Type.Array(Enterprise),
    devices: Type.Array(Device),
    checkpoints: Type.Array(Checkpoint),
    thresholds: Type.Record(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' }), Threshold),
    camera: Type.Object(
      {
        /** Events below this confidence are recorded but raise no alert. */
        minConfidence: Type.Number({ minimum: 0, maximum: 1 }),
        /** After an alert, the same camera and event type raise no new alert for this long. */
        cooldownSeconds: Type.Integer({ minimum: 0 }),
        severity: Type.Record(Type.String(), SeverityName),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
)

export type GatewayConfig = Static<typeof GatewayConfigSchema>
export type DeviceConfig = GatewayConfig['devices'][number]
export type ThresholdConfig = Static<typeof Threshold>
