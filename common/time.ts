/** Parses a source time (epoch ms or ISO 8601 with a zone) to epoch ms, or undefined. */
export function toEpochMs(value: number | string | undefined): number | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined
  const ms = Date.parse(value)
  return Number.isFinite(ms) ? ms : undefined
}

/** Parses a query-string time: epoch ms digits or an ISO 8601 string. */
export function parseQueryTime(value: string): number | undefined {
  if (/^\d{1,16}$/.test(value)) return Number(value)
  const ms = Date.parse(value)
  return Number.isFinite(ms) ? ms : undefined
}
