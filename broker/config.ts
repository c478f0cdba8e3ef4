/**
 * The broker's settings: the same shape whether it runs inside the gateway (the `broker:` section
 * of the office config) or standalone (`npm run broker -- --config broker.yaml`).
 */
import Type, { type Static } from 'typebox'

const Port = Type.Integer({ minimum: 0, maximum: 65535 })
const Host = Type.String({ minLength: 1, maxLength: 255 })

const TcpListener = Type.Object({ host: Host, port: Port }, { additionalProperties: false })

const TlsListener = Type.Object(
  {
    host: Host,
    port: Port,
    /** PEM files. Paths are read as given, relative to the working directory. */
    cert: Type.String({ minLength: 1 }),
    key: Type.String({ minLength: 1 }),
    /** CA bundle that signs device certificates; required for client certificates. */
    ca: Type.Optional(Type.String({ minLength: 1 })),
    /**
     * 'off': no client certificates. 'optional': a device may present one (its CN or a SAN names
     * it, and it needs no password) or log in with a password. 'required': mutual TLS only.
     */
    clientCertificates: Type.Union([Type.Literal('off'), Type.Literal('optional'), Type.Literal('required')]),
  },
  { additionalProperties: false },
)

const WsListener = Type.Object(
  {
    host: Host,
    port: Port,
    /** HTTP path of the WebSocket endpoint; MQTT.js and Paho default to /mqtt. */
    path: Type.String({ pattern: '^/' }),
    /** Serve wss:// with these PEM files instead of ws://. */
    tls: Type.Optional(Type.Object({ cert: Type.String({ minLength: 1 }), key: Type.String({ minLength: 1 }) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
)

export const BrokerLimits = Type.Object(
  {
    /** Largest MQTT packet accepted, in bytes (fixed header's remaining length). Bigger: disconnected. */
    maxPacketBytes: Type.Integer({ minimum: 1024, maximum: 268_435_455 }),
    maxConnections: Type.Integer({ minimum: 1 }),
    /** New connections per second from one IP address; more are closed before any MQTT is read. */
    connectsPerSecondPerAddress: Type.Number({ minimum: 0.1 }),
    /**
     * Publishes per second per client. Over it, the broker stops reading that client's socket until
     * the rate allows: back-pressure, nothing dropped. Burst allowance is one second's worth.
     */
    messagesPerSecondPerClient: Type.Number({ minimum: 1 }),
    /**
     * Messages routed but not yet delivered, across the broker. Over it, publishers are paused
     * until subscribers catch up; this is what keeps a flood from piling up inside Aedes.
     */
    maxInFlightRouted: Type.Integer({ minimum: 10 }),
    /** Largest keepalive a client may ask for, seconds (0: any). Aedes disconnects after 1.5×. */
    keepaliveMaxSeconds: Type.Integer({ minimum: 0, maximum: 65535 }),
    /** A subscriber whose socket stays full this long is disconnected (slow consumer). */
    drainTimeoutMs: Type.Integer({ minimum: 100 }),
    /** Time allowed between TCP accept and CONNECT. */
    connectTimeoutMs: Type.Integer({ minimum: 100 }),
    /**
     * After a restart, how long a client that was connected when the broker went down has to
     * reconnect before its Will is published (its connection ended without a DISCONNECT).
     */
    restoredWillGraceMs: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
)

export const BrokerPersistence = Type.Object(
  {
    /** SQLite file for sessions, queues, retained messages and Wills; null keeps them in memory. */
    path: Type.Union([Type.String({ minLength: 1 }), Type.Null()]),
    synchronous: Type.Union([Type.Literal('full'), Type.Literal('normal')]),
  },
  { additionalProperties: false },
)

export const BrokerSettings = Type.Object(
  {
    tcp: Type.Union([TcpListener, Type.Null()]),
    tls: Type.Union([TlsListener, Type.Null()]),
    ws: Type.Union([WsListener, Type.Null()]),
    /** Lab and interop use only, like Mosquitto 2's `allow_anonymous`: logged as a warning at start. */
    allowAnonymous: Type.Boolean(),
    persistence: BrokerPersistence,
    limits: BrokerLimits,
  },
  { additionalProperties: false },
)

export type BrokerSettings = Static<typeof BrokerSettings>
export type BrokerLimits = Static<typeof BrokerLimits>

/**
 * Defaults sized for one street office: a few hundred devices, bursts from patrol wands that
 * upload a day of scans when docked, and a cap well under the 256 MB MQTT maximum packet.
 */
export const brokerDefaults: BrokerSettings = {
  tcp: { host: '0.0.0.0', port: 1883 },
  tls: null,
  ws: null,
  allowAnonymous: false,
  persistence: { path: null, synchronous: 'full' },
  limits: {
    maxPacketBytes: 256 * 1024,
    maxConnections: 5000,
    connectsPerSecondPerAddress: 20,
    messagesPerSecondPerClient: 10_000,
    maxInFlightRouted: 2000,
    keepaliveMaxSeconds: 1200,
    drainTimeoutMs: 30_000,
    connectTimeoutMs: 10_000,
    restoredWillGraceMs: 10_000,
  },
}
