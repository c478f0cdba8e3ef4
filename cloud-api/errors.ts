/**
 * cloud-api's error catalogue: each code has its HTTP status. Every error response has the shape
 * `ErrorBody` (contracts/ingest.ts): statusCode, code, error, message, and `problems` with JSON
 * Pointer paths when the request itself is at fault.
 */
import { CodedError } from '../common/errors.ts'
import type { SchemaProblem } from '../contracts/validate.ts'

export const CloudErrorStatus = {
  CLOUD_REQUEST_INVALID: 400,
  CLOUD_INGEST_INVALID: 400,
  /** The event store refused some envelopes of a valid batch for good; `problems` names them, the rest was stored. */
  CLOUD_STORE_REJECTED: 400,
  CLOUD_UNAUTHENTICATED: 401,
  CLOUD_FORBIDDEN: 403,
  CLOUD_NOT_FOUND: 404,
  /** The alert or incident is not in a state that allows this action, or a name is taken. */
  CLOUD_CONFLICT: 409,
  CLOUD_BODY_TOO_LARGE: 413,
  CLOUD_UNSUPPORTED_MEDIA_TYPE: 415,
  CLOUD_RATE_LIMITED: 429,
  CLOUD_INTERNAL: 500,
  CLOUD_STORE_UNAVAILABLE: 503,
  /** The event store refused points for a reason no envelope can be blamed for (a database limit); kept and retried. */
  CLOUD_STORE_REFUSED: 503,
  /** The API itself is overloaded (event loop or memory); retry later. */
  CLOUD_BUSY: 503,
} as const
export type CloudErrorCode = keyof typeof CloudErrorStatus

export class ApiError extends CodedError {
  constructor(
    code: CloudErrorCode,
    message: string,
    readonly problems?: SchemaProblem[],
    /** Seconds, for 429 and 503. */
    readonly retryAfter?: number,
  ) {
    super(code, message, CloudErrorStatus[code])
  }
}
