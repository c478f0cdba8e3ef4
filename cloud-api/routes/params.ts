/** Query parameters shared by the read routes: time bounds and limits, with errors that name them. */
import Type from 'typebox'
import { parseQueryTime } from '../../common/time.ts'
import { ApiError } from '../errors.ts'

export const QueryTime = Type.String({ maxLength: 40, description: 'ISO 8601, or epoch milliseconds' })
export const Limit = Type.String({ pattern: '^[0-9]{1,6}$' })

function parse(text: string, path: string): number {
  const t = parseQueryTime(text)
  if (t === undefined) throw new ApiError('CLOUD_REQUEST_INVALID', 'bad time', [{ path, message: 'must be ISO 8601 (YYYY-MM-DD…) or epoch milliseconds, from 1970 on' }])
  return t
}

/** [from, to] with defaults: `to` now, `from` a span before it. */
export function timeWindow(fromText: string | undefined, toText: string | undefined, defaultSpan: number, now = Date.now()) {
  const to = toText === undefined ? now : parse(toText, '/to')
  const from = fromText === undefined ? to - defaultSpan : parse(fromText, '/from')
  if (from > to) throw new ApiError('CLOUD_REQUEST_INVALID', 'empty time range', [{ path: '/from', message: 'must not be after to' }])
  return { from, to }
}

/** Optional bounds: either may be absent. */
export function timeWindowOptional(fromText: string | undefined, toText: string | undefined) {
  const from = fromText === undefined ? undefined : parse(fromText, '/from')
  const to = toText === undefined ? undefined : parse(toText, '/to')
  if (from !== undefined && to !== undefined && from > to) {
    throw new ApiError('CLOUD_REQUEST_INVALID', 'empty time range', [{ path: '/from', message: 'must not be after to' }])
  }
  return { from, to }
}

export function boundedLimit(text: string | undefined, fallback: number, max: number): number {
  const n = text === undefined ? fallback : Number(text)
  if (n < 1 || n > max) throw new ApiError('CLOUD_REQUEST_INVALID', 'bad limit', [{ path: '/limit', message: `must be 1..${max}` }])
  return n
}
