/**
 * Read endpoints: GET /v1/alerts and GET /v1/series.
 */
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { Ident, Severities } from '../../contracts/envelope.ts'
import { parseQueryTime } from '../../common/time.ts'
import { foldAlerts } from '../alerts/fold.ts'
import { ApiError } from '../errors.ts'
import type { AppDeps } from '../app.ts'

const QueryTime = Type.String({ maxLength: 40, description: 'ISO 8601, or epoch milliseconds' })
const Limit = Type.String({ pattern: '^[0-9]{1,6}$' })

const AlertsQuery = Type.Object(
  {
    office: Type.Optional(Ident),
    device: Type.Optional(Ident),
    type: Type.Optional(Type.String({ maxLength: 64 })),
    state: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('cleared')])),
    severity: Type.Optional(Type.Enum([...Severities])),
    from: Type.Optional(QueryTime),
    to: Type.Optional(QueryTime),
    limit: Type.Optional(Limit),
  },
  { additionalProperties: false },
)

const SeriesQuery = Type.Object(
  {
    device: Ident,
    quantity: Type.Optional(Ident),
    from: Type.Optional(QueryTime),
    to: Type.Optional(QueryTime),
    limit: Type.Optional(Limit),
  },
  { additionalProperties: false },
)

const GapsQuery = Type.Object(
  {
    office: Type.Optional(Ident),
    device: Type.Optional(Ident),
    from: Type.Optional(QueryTime),
    to: Type.Optional(QueryTime),
    limit: Type.Optional(Limit),
  },
  { additionalProperties: false },
)

const DAY = 86_400_000
/** How many alert events one list request folds at most. */
const MAX_ALERT_EVENTS = 100_000

export function queryRoutes(app: FastifyInstance, deps: AppDeps): void {
  const api = app.withTypeProvider<TypeBoxTypeProvider>()
  gapRoutes(app, deps)

  api.get('/v1/alerts', { onRequest: deps.auth.requireReader, schema: { querystring: AlertsQuery } }, async (req) => {
    const q = req.query
    const { from, to } = timeWindow(q.from, q.to, 7 * DAY)
    const limit = boundedLimit(q.limit, 200, 5000)
    const events = await deps.store.alertEvents({ ...(q.office ? { office: q.office } : {}), from, to, limit: MAX_ALERT_EVENTS })
    const alerts = foldAlerts(events, {
      ...(q.state ? { state: q.state } : {}),
      ...(q.severity ? { severity: q.severity } : {}),
      ...(q.device ? { device: q.device } : {}),
      ...(q.type ? { type: q.type } : {}),
    })
    return { from: new Date(from).toISOString(), to: new Date(to).toISOString(), total: alerts.length, alerts: alerts.slice(0, limit) }
  })

  api.get('/v1/series', { onRequest: deps.auth.requireReader, schema: { querystring: SeriesQuery } }, async (req) => {
    const q = req.query
    const { from, to } = timeWindow(q.from, q.to, DAY)
    const limit = boundedLimit(q.limit, 10_000, 100_000)
    const points = await deps.store.readings({ device: q.device, from, to, limit, ...(q.quantity ? { quantity: q.quantity } : {}) })
    return {
      device: q.device,
      ...(q.quantity ? { quantity: q.quantity } : {}),
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      truncated: points.length >= limit,
      points: points.map((p) => ({ time: new Date(p.ts).toISOString(), quantity: p.quantity, value: p.value, unit: p.unit, id: p.id })),
    }
  })
}

/**
 * GET /v1/gaps: what gateways had to drop (disk quota reached or TTL passed during a long outage),
 * per device, so nobody mistakes missing data for quiet sensors.
 */
function gapRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.withTypeProvider<TypeBoxTypeProvider>().get(
    '/v1/gaps',
    { onRequest: deps.auth.requireReader, schema: { querystring: GapsQuery } },
    async (req) => {
      const q = req.query
      const { from, to } = timeWindow(q.from, q.to, 7 * DAY)
      const limit = boundedLimit(q.limit, 1000, 10_000)
      const gaps = await deps.store.gaps({ ...(q.office ? { office: q.office } : {}), from, to, limit })
      const selected = q.device ? gaps.filter((g) => g.device === q.device) : gaps
      return {
        from: new Date(from).toISOString(),
        to: new Date(to).toISOString(),
        gaps: selected.map((g) => ({
          ...g,
          recordedAt: new Date(g.ts).toISOString(),
          from: new Date(g.from).toISOString(),
          to: new Date(g.to).toISOString(),
        })),
      }
    },
  )
}

function timeWindow(fromText: string | undefined, toText: string | undefined, defaultSpan: number) {
  const to = toText === undefined ? Date.now() : parseQueryTime(toText)
  if (to === undefined) throw new ApiError('CLOUD_REQUEST_INVALID', 'bad time', [{ path: '/to', message: 'must be ISO 8601 or epoch milliseconds' }])
  const from = fromText === undefined ? to - defaultSpan : parseQueryTime(fromText)
  if (from === undefined) throw new ApiError('CLOUD_REQUEST_INVALID', 'bad time', [{ path: '/from', message: 'must be ISO 8601 or epoch milliseconds' }])
  if (from > to) throw new ApiError('CLOUD_REQUEST_INVALID', 'empty time range', [{ path: '/from', message: 'must not be after to' }])
  return { from, to }
}

function boundedLimit(text: string | undefined, fallback: number, max: number): number {
  const n = text === undefined ? fallback : Number(text)
  if (n < 1 || n > max) throw new ApiError('CLOUD_REQUEST_INVALID', 'bad limit', [{ path: '/limit', message: `must be 1..${max}` }])
  return n
}
