/**
 * Config of the camera HTTP input (`inputs.camera` in the office config): where cameras push their
 * ISAPI event notifications, and what the gateway keeps of them. null (the default) turns it off.
 *
 * The default of `inputs.camera` is null, and the config loader's deep merge replaces a null
 * wholesale, so every field but `port` is optional here and its default lives in
 * `resolveCameraSettings()` (documented in docs/inputs/camera.md).
 */
import Type, { type Static } from 'typebox'
import { Ident } from '../../../contracts/envelope.ts'

const CameraPin = Type.Object(
  {
    /** A camera device (`via: http`) of /devices. */
    id: Ident,
    /** Addresses the camera may push from (exact IPv4/IPv6 text, as the socket reports it). */
    allowFrom: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 16 })),
    /**
     * For a camera that logs in only with Digest: MD5("<id>:GridWatch camera input:<password>"),
     * 32 hex digits. It stands for the password in this realm; keep the file as private as the password.
     */
    digestHa1: Type.Optional(Type.String({ pattern: '^[0-9a-f]{32}$' })),
  },
  { additionalProperties: false },
)

export const CameraListener = Type.Object(
  {
    host: Type.Optional(Type.String({ minLength: 1 })),
    /** 0 picks a free port (tests); the input's `port` getter says which. */
    port: Type.Integer({ minimum: 0, maximum: 65535 }),
    /** The URL path the camera's "HTTP listening" / alarm host setting points at. */
    path: Type.Optional(Type.String({ pattern: '^/[A-Za-z0-9/_.-]*$', maxLength: 128 })),
    /** PEM files; with them the listener speaks HTTPS only (cameras then send Basic credentials safely). */
    tls: Type.Optional(Type.Union([Type.Object({ cert: Type.String({ minLength: 1 }), key: Type.String({ minLength: 1 }) }, { additionalProperties: false }), Type.Null()])),
    /** Largest request accepted (XML plus snapshot), in bytes. */
    maxBodyBytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024 })),
    snapshots: Type.Optional(
      Type.Object(
        {
          /** A snapshot larger than this is dropped (the event is kept). */
          maxBytes: Type.Optional(Type.Integer({ minimum: 1024 })),
          /** Disk kept for snapshots under `<dataDir>/snapshots`; the oldest go first. 0 keeps none. */
          quotaMb: Type.Optional(Type.Number({ minimum: 0 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** ISAPI events rarely carry a confidence; this one is used then (see docs/inputs/camera.md). */
    defaultConfidence: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    /** Extra or changed ISAPI eventType → GridWatch event mappings, e.g. `{ PIR: intrusion }`. */
    eventTypes: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 64 }), Ident)),
    auth: Type.Optional(
      Type.Object(
        {
          /** Failed logins from one address within `windowSeconds` before it gets 429 for the rest of the window. */
          maxFailures: Type.Optional(Type.Integer({ minimum: 1 })),
          windowSeconds: Type.Optional(Type.Integer({ minimum: 1 })),
          /** How long a verified login is remembered, so scrypt runs once per camera, not per event. */
          cacheSeconds: Type.Optional(Type.Integer({ minimum: 0 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** Optional per-camera settings: address pinning, a Digest HA1. */
    cameras: Type.Optional(Type.Array(CameraPin)),
  },
  { additionalProperties: false },
)

export const CameraInputConfig = Type.Union([CameraListener, Type.Null()])
export type CameraInputConfig = Static<typeof CameraInputConfig>
export const cameraDefaults: CameraInputConfig = null

/** The listener config with every default filled in. */
export interface CameraSettings {
  host: string
  port: number
  path: string
  tls: { cert: string; key: string } | null
  maxBodyBytes: number
  snapshots: { maxBytes: number; quotaBytes: number }
  defaultConfidence: number
  eventTypes: Record<string, string>
  auth: { maxFailures: number; windowMs: number; cacheMs: number }
  pins: Map<string, Set<string>>
  digestHa1: Map<string, string>
}

export function resolveCameraSettings(c: Static<typeof CameraListener>): CameraSettings {
  return {
    host: c.host ?? '0.0.0.0',
    port: c.port,
    // The path Hikvision documents for a platform's alarm host; any path can be set on the camera.
    path: c.path ?? '/ISAPI/Event/notification/alert',
    tls: c.tls ?? null,
    // A 4 MP JPEG snapshot is 300-800 KB; 4 MiB leaves room for two plus the XML.
    maxBodyBytes: c.maxBodyBytes ?? 4 * 1024 * 1024,
    snapshots: { maxBytes: c.snapshots?.maxBytes ?? 1024 * 1024, quotaBytes: (c.snapshots?.quotaMb ?? 512) * 1024 * 1024 },
    // A camera posts an alarm only after its own sensitivity and alarmConfidence thresholds passed.
    defaultConfidence: c.defaultConfidence ?? 1,
    eventTypes: c.eventTypes ?? {},
    auth: {
      maxFailures: c.auth?.maxFailures ?? 10,
      windowMs: (c.auth?.windowSeconds ?? 60) * 1000,
      cacheMs: (c.auth?.cacheSeconds ?? 600) * 1000,
    },
    pins: new Map((c.cameras ?? []).flatMap((p) => (p.allowFrom ? [[p.id, new Set(p.allowFrom)] as const] : []))),
    digestHa1: new Map((c.cameras ?? []).flatMap((p) => (p.digestHa1 ? [[p.id, p.digestHa1] as const] : []))),
  }
}
