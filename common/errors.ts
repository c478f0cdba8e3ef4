/**
 * Base of each deployable's error catalogue. A coded error carries the code that becomes a
 * metric label and a log field (`code`), and, in cloud-api, the HTTP status it maps to.
 */
export class CodedError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly statusCode = 500,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = code
  }
}
