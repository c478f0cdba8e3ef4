/**
 * The street-office gateway's configuration: one file describes one office, its grids, the
 * enterprises and devices in them, the patrol routes and who walks them, and how readings become
 * alarms. docs/rules.md explains each section; gateway/config/demo-office.yaml is a
 * complete example.
 */
import Type, { type Static } from 'typebox'
import { Ident, Severities } from '../../contracts/envelope.ts'
import { BrokerSettings } from '../../broker/config.ts'
import { CameraInputConfig } from '../inputs/camera/config.ts'
import { ModbusInputsConfig } from '../inputs/modbus/config.ts'
import { OpcuaInputsConfig } from '../inputs/opcua/config.ts'
import { SerialInputsConfig } from '../inputs/serial/config.ts'

const Port = Type.Integer({ minimum: 0, maximum: 65535 })

/** An office broker the gateway does not run: it reads devices' topics there as an MQTT client. */
const ExternalBroker = Type.Object(
  {
    /** mqtt://, mqtts://, ws:// or wss:// */
    url: Type.String({ pattern: '^(mqtts?|wss?)://' }),
    /** The gateway's own identity on that broker. Prefer GRIDWATCH_BROKER_PASSWORD for the password. */
    username: Type.Optional(Type.String({ minLength: 1 })),
    password: Type.Optional(Type.String()),
    clientId: Type.String({ minLength: 1, maxLength: 128 }),
    /** CA bundle (PEM path) for mqtts:// to a broker with a private CA. */
    ca: Type.Optional(Type.String({ minLength: 1 })),
    /** Topic filter to read; `$share/{group}/dev/+/+` splits devices between gateways on MQTT 5 brokers. */
    topic: Type.String({ minLength: 1 }),
  },
  { additionalProperties: false },
)
const SeverityName = Type.Enum([...Severities])
const Name = Type.String({ maxLength: 128 })
/** Local wall-clock time of day, `HH:MM`, in the office's time zone. */
const ClockTime = Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$' })
/** A daily window of local time, `HH:MM-HH:MM`; it may cross midnight (`22:00-06:00`). */
const ClockWindow = Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$' })

export const DeviceTypes = [
  'gas-detector',
  'co-detector',
  'smoke-detector',
  'temperature-sensor',
  'pressure-sensor',
  'patrol-phone',
  'camera',
  'checkpoint-reader',
  'patrol-wand',
] as const

/** How a device reaches the gateway. Only MQTT and camera HTTP devices log in with a secret of their own. */
export const DeviceTransports = ['mqtt', 'serial', 'modbus', 'opcua', 'http'] as const

/**
 * How one quantity's readings become alarms. Two ascending alarm levels as Chinese gas detectors
 * name them, 低报 (low alarm) and 高报 (high alarm), and an optional warning level below them.
 */
const Threshold = Type.Object(
  {
    unit: Type.String({ maxLength: 16 }),
    /** Optional early level below `low`: a minor alert. */
    warning: Type.Optional(Type.Number()),
    low: Type.Number(),
    high: Type.Number(),
    /** The value an alarm clears below. Defaults to `(warning ?? low) - hysteresis`. */
    clear: Type.Optional(Type.Number()),
    hysteresis: Type.Number({ minimum: 0 }),
    /** Debounce: raise only after this many consecutive samples at or above a level... */
    debounceSamples: Type.Integer({ minimum: 1 }),
    /** ...or once the value has stayed there this long, whichever comes first (0: off). */
    debounceSeconds: Type.Number({ minimum: 0 }),
    /** Rate of change, in units per minute, that raises `sensor.rate_of_change` (0: off). */
    ratePerMinute: Type.Number({ minimum: 0 }),
    /** The same value for this long raises `sensor.stuck` (0: off). */
    stuckMinutes: Type.Number({ minimum: 0 }),
    /** No reading for this long raises `sensor.stale` (0: off). */
    staleMinutes: Type.Number({ minimum: 0 }),
  },
  { additionalProperties: false },
)

/** Per-enterprise or per-device changes to the office thresholds, quantity by quantity. */
const ThresholdOverrides = Type.Record(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' }), Type.Partial(Threshold))

const Device = Type.Object(
  {
    id: Ident,
    type: Type.Enum([...DeviceTypes]),
    name: Type.Optional(Name),
    /** The enterprise whose premises the sensor watches; absent for patrol phones and street cameras. */
    enterprise: Type.Optional(Ident),
    /** The grid the device stands in (for a phone: the grid of the staff who carries it). */
    grid: Type.Optional(Ident),
    /** How it reaches the gateway; `mqtt` when absent. The input's own config (`inputs`) says where. */
    via: Type.Optional(Type.Enum([...DeviceTransports])),
    /**
     * Its password (MQTT, or camera HTTP login) as a scrypt hash (`npm run gateway -- hash-secret`).
     * Never the password itself.
     */
    secret: Type.Optional(Type.String({ maxLength: 256 })),
    thresholds: Type.Optional(ThresholdOverrides),
  },
  { additionalProperties: false },
)

const Enterprise = Type.Object(
  { id: Ident, name: Name, grid: Type.Optional(Ident), thresholds: Type.Optional(ThresholdOverrides) },
  { additionalProperties: false },
)

const Community = Type.Object(
  { id: Ident, name: Name, grids: Type.Array(Type.Object({ id: Ident, name: Name }, { additionalProperties: false })) },
  { additionalProperties: false },
)

const Staff = Type.Object(
  { id: Ident, name: Name, grid: Type.Optional(Ident), phone: Type.Optional(Ident) },
  { additionalProperties: false },
)

const Checkpoint = Type.Object(
  {
    id: Ident,
    /** The NFC/RFID tag id as the reader reports it (hex, case-insensitive). */
    tag: Type.String({ minLength: 1, maxLength: 64 }),
    name: Name,
    grid: Type.Optional(Ident),
  },
  { additionalProperties: false },
)

const Schedule = Type.Object(
  {
    /** Local start time of the tour. */
    start: ClockTime,
    /** ISO weekdays the tour runs (1 = Monday … 7 = Sunday); every day when absent. */
    days: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 7 }), { minItems: 1, maxItems: 7 })),
    durationMinutes: Type.Integer({ minimum: 1, maximum: 24 * 60 }),
    /** Slack after the start (not started yet?) and after the end (late or missed?). */
    graceMinutes: Type.Integer({ minimum: 0, maximum: 12 * 60 }),
    /** Who may walk it; a scan by anyone else is flagged. Empty: anyone. */
    staff: Type.Array(Ident),
  },
  { additionalProperties: false },
)

export const RouteSchema = Type.Object(
  {
    id: Ident,
    name: Name,
    /** Ordered: checkpoints must be scanned in this order. */
    ordered: Type.Boolean(),
    checkpoints: Type.Array(Ident, { minItems: 1 }),
    schedules: Type.Array(Schedule),
  },
  { additionalProperties: false },
)

const Level = Type.Enum(['grid', 'community', 'street'])

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
    office: Type.Object(
      {
        id: Ident,
        name: Name,
        /** Offset of local time from UTC, for schedules and time windows (China: +480, no DST). */
        utcOffsetMinutes: Type.Integer({ minimum: -720, maximum: 840 }),
      },
      { additionalProperties: false },
    ),
    broker: Type.Object(
      {
        ...BrokerSettings.properties,
        /**
         * 'embedded' (default): devices connect to the broker inside the gateway. 'external': the
         * gateway subscribes to an office broker it does not run (Mosquitto, EMQX) with `external`.
         */
        mode: Type.Union([Type.Literal('embedded'), Type.Literal('external')]),
        external: Type.Union([ExternalBroker, Type.Null()]),
      },
      { additionalProperties: false },
    ),
    /** The gateway's own HTTP endpoint: /healthz, /readyz, /metrics, /v1/raw. null turns it off. */
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
    /** Field inputs besides MQTT: serial lines, Modbus RTU buses, OPC UA servers, the camera HTTP listener. */
    inputs: Type.Object(
      { serial: SerialInputsConfig, modbus: ModbusInputsConfig, opcua: OpcuaInputsConfig, camera: CameraInputConfig },
      { additionalProperties: false },
    ),
    communities: Type.Array(Community),
    enterprises: Type.Array(Enterprise),
    devices: Type.Array(Device),
    staff: Type.Array(Staff),
    checkpoints: Type.Array(Checkpoint),
    routes: Type.Array(RouteSchema),
    thresholds: Type.Record(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' }), Threshold),
    /** What reaches the center: every reading is judged by the rules and kept locally; not all are sent. */
    reduction: Type.Object(
      {
        /** Send a reading when it moved at least this far from the last one sent (per quantity; 0 sends all). */
        deadband: Type.Record(Type.String(), Type.Number({ minimum: 0 })),
        /** ...or when this long has passed since the last one sent. */
        maxIntervalSeconds: Type.Integer({ minimum: 1 }),
        /** Send one-minute min/max/mean/count per device and quantity. */
        aggregates: Type.Boolean(),
        /** Keep every raw reading on the gateway this long, queryable at GET /v1/raw. */
        rawRetentionDays: Type.Number({ minimum: 0 }),
      },
      { additionalProperties: false },
    ),
    camera: Type.Object(
      {
        /** Events below this confidence are recorded but raise no alert. */
        minConfidence: Type.Number({ minimum: 0, maximum: 1 }),
        /** After an alert, the same camera and event type raise no new alert for this long. */
        cooldownSeconds: Type.Integer({ minimum: 0 }),
        severity: Type.Record(Type.String(), SeverityName),
        /**
         * When an event type counts: `outside` a window (intrusion outside opening hours) or only
         * `during` one. Events at other times are recorded without an alert.
         */
        windows: Type.Record(
          Type.String(),
          Type.Object({ outside: Type.Optional(ClockWindow), during: Type.Optional(ClockWindow) }, { additionalProperties: false }),
        ),
      },
      { additionalProperties: false },
    ),
    /** A device raising alerts faster than this is a storm: the rest become one storm alert. */
    storm: Type.Object(
      {
        maxAlerts: Type.Integer({ minimum: 1 }),
        windowSeconds: Type.Integer({ minimum: 1 }),
      },
      { additionalProperties: false },
    ),
    patrol: Type.Object(
      {
        /** The same tag scanned again by the same device within this long is a double scan. */
        doubleScanSeconds: Type.Integer({ minimum: 0 }),
      },
      { additionalProperties: false },
    ),
    /**
     * Who should handle an alert or incident: the grid, the community or the street office.
     * By alert type first, then by severity.
     */
    levels: Type.Object(
      {
        bySeverity: Type.Object({ critical: Level, major: Level, minor: Level }, { additionalProperties: false }),
        byType: Type.Record(Type.String(), Level),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
)

export type GatewayConfig = Static<typeof GatewayConfigSchema>
export type DeviceConfig = GatewayConfig['devices'][number]
export type ThresholdConfig = Static<typeof Threshold>
export type RouteConfig = GatewayConfig['routes'][number]
export type ScheduleConfig = RouteConfig['schedules'][number]
export type EscalationLevel = Static<typeof Level>
