/**
 * `POST /v1/ingest`: a gateway delivers a batch of envelopes to the center.
 *
 * Idempotent by envelope id: delivering the same envelope twice stores it once. Every id in the
 * batch gets its own answer, and the gateway deletes an outbox row only on `stored` or `duplicate`.
 */
import Type, { type Static } from 'typebox'
import { EnvelopeBase } from './envelope.ts'

/** Keep a batch well below the body limit: 2,000 envelopes of ~300 bytes is ~600 kB of JSON. */
export const MAX_BATCH_ENVELOPES = 2000

export const IngestRequest = Type.Object(
  { envelopes: Type.Array(EnvelopeBase, { minItems: 1, maxItems: MAX_BATCH_ENVELOPES }) },
  { additionalProperties: false },
)
export type IngestRequest = Static<typeof IngestRequest>

export const IngestStatus = Type.Union([
  /** Now in the center's store. */
  Type.Literal('stored'),
  /** Was already in the store (a replay); nothing changed. Some stores cannot tell and say `stored`. */
  Type.Literal('duplicate'),
])
export type IngestStatus = Static<typeof IngestStatus>

export const IngestResponse = Type.Object({
  results: Type.Array(Type.Object({ id: Type.String(), status: IngestStatus })),
})
export type IngestResponse = Static<typeof IngestResponse>

/** The error body every cloud-api error uses. */
export const ErrorBody = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String(),
  error: Type.String(),
  message: Type.String(),
  problems: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
})
export type ErrorBody = Static<typeof ErrorBody>
