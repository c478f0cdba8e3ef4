/**
 * One logger factory for every deployable, so logs share field names:
 * `service` (gateway | broker | cloud-api | device | demo), `office`, `gateway`, `device`,
 * `kind`, `code` (an error-catalogue code) and `err`.
 *
 * Secrets never reach a log line: credential-shaped fields are redacted here, once, rather than
 * trusted to every call site.
 */
import pino, { type Logger, type LoggerOptions } from 'pino'

export type { Logger } from 'pino'

export const redactPaths = [
  'password',
  'token',
  'secret',
  '*.password',
  '*.token',
  '*.secret',
  'req.headers.authorization',
  'headers.authorization',
]

export interface LoggerSettings {
  service: string
  level?: string
  /** Extra fields on every line, e.g. `{ office, gateway }`. */
  base?: Record<string, unknown>
  /** Where lines go; defaults to stdout. Tests pass a stream to read them back. */
  destination?: pino.DestinationStream
}

export function createLogger(settings: LoggerSettings): Logger {
  const options: LoggerOptions = {
    level: settings.level ?? process.env.LOG_LEVEL ?? 'info',
    base: { service: settings.service, ...settings.base },
    redact: { paths: redactPaths, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  }
  return settings.destination ? pino(options, settings.destination) : pino(options)
}

/** A logger that writes nothing, for unit tests and library defaults. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}
