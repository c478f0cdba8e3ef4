/** Parses a source time (epoch ms or ISO 8601 with a zone) to epoch ms, or undefined. */
export function toEpochMs(value: number | string | undefined): number | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined
  const ms = Date.parse(value)
  return Number.isFinite(ms) ? ms : undefined
}

/** The latest time a query may name: 2100-01-01, where envelope times end (contracts EpochMs). */
export const LATEST_QUERY_MS = 4_102_444_800_000

/**
 * Parses a query-string time: epoch ms digits, or an ISO 8601 date or date-time (it must start
 * `YYYY-MM-DD`: V8's Date.parse also reads loose text such as `-1`, as 2001-01-01). Times past
 * 2100 are read as 2100, where every stored time ends, so a window "until far in the future"
 * means what it says; before 1970 is refused, as is anything Date cannot hold.
 */
export function parseQueryTime(value: string): number | undefined {
  let ms: number
  if (/^\d{1,16}$/.test(value)) ms = Number(value)
  else if (/^\d{4}-\d{2}-\d{2}(?:$|T)/.test(value)) ms = Date.parse(value)
  else return undefined
  if (!Number.isFinite(ms) || ms < 0 || ms > 8.64e15) return undefined
  return Math.min(ms, LATEST_QUERY_MS)
}
