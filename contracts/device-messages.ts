/**
 * What a field device publishes on `dev/{deviceId}/{kind}` (JSON, UTF-8).
 *
 * These are deliberately looser than the envelope payloads: `ts` may be missing (cheap sensors
 * have no clock) or an ISO 8601 string, `unit` may be left to the gateway's config, and a scan
 * names only the tag it read. The gateway's normalizer turns each into a canonical envelope.
 */
import Type, { type Static } from 'typebox'
import { CameraPayload, Ident, Location, ReportPayload, StatusPayload } from './envelope.ts'

/** Source time: epoch milliseconds or an ISO 8601 string with a zone. */
export const SourceTime = Type.Union([
  Type.Integer({ minimum: 0 }),
  Type.String({ maxLength: 40, pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?(Z|[+-]\\d{2}:?\\d{2})$' }),
])

export const DeviceReading = Type.Object(
  {
    ts: Type.Optional(SourceTime),
    quantity: Ident,
    value: Type.Number(),
    unit: Type.Optional(Type.String({ maxLength: 16 })),
  },
  { additionalProperties: false },
)

export const DeviceScan = Type.Object(
  {
    ts: Type.Optional(SourceTime),
    tag: Type.String({ minLength: 1, maxLength: 64 }),
    staff: Type.Optional(Ident),
    method: Type.Optional(Type.Union([Type.Literal('nfc'), Type.Literal('reader'), Type.Literal('wand'), Type.Literal('qr')])),
    location: Type.Optional(Location),
  },
  { additionalProperties: false },
)

/** The envelope payload plus an optional source time. */
export const DeviceCamera = Type.Object({ ts: Type.Optional(SourceTime), ...CameraPayload.properties }, { additionalProperties: false })
export const DeviceReport = Type.Object({ ts: Type.Optional(SourceTime), ...ReportPayload.properties }, { additionalProperties: false })
export const DeviceStatus = Type.Object({ ts: Type.Optional(SourceTime), ...StatusPayload.properties }, { additionalProperties: false })

export const deviceMessageSchemas = {
  reading: DeviceReading,
  scan: DeviceScan,
  camera: DeviceCamera,
  report: DeviceReport,
  status: DeviceStatus,
} as const

export type DeviceReading = Static<typeof DeviceReading>
export type DeviceScan = Static<typeof DeviceScan>
export type DeviceCamera = Static<typeof DeviceCamera>
export type DeviceReport = Static<typeof DeviceReport>
export type DeviceStatus = Static<typeof DeviceStatus>
