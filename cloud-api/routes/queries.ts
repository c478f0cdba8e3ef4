/**
 * Sensor history and data gaps.
 *
 *   GET /v1/series?device&quantity&from&to&window=1m|1h|1d   per-window mean, min, max, count
 *   GET /v1/series?device[&quantity]&from&to[&limit]         raw readings, oldest first
 *   GET /v1/gaps?office&device&from&to                       what gateways had to drop
 *
 * Series are for admins, center staff (their district's devices) and inspectors (their
 * enterprises' devices). A device the caller may not see is answered 404, like an unknown one.
 */
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { Ident } from '../../contracts/envelope.ts'
import { canSee, officeFilter, type UserPrincipal } from '../access/principal.ts'
import { windowMs } from '../store/store.ts'
import { ApiError } from '../errors.ts'
import type { AppDeps } from '../app.ts'
import { boundedLimit, Limit, QueryTime, timeWindow } from './params.ts'

const SeriesQuery = Type.Object(
  {
    device: Ident,
    quantity: Type.Optional(Ident),
    from: Type.Optional(QueryTime),
    to: Type.Optional(QueryTime),
    window: Type.Optional(Type.Enum(['1m', '1h', '1d'])),
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
/** Most windows one series request may span, so a 1 m series cannot ask for a year. */
const MAX_BUCKETS = 50_000

export function queryRoutes(app: FastifyInstance, deps: AppDeps): void {
  const api = app.withTypeProvider<TypeBoxTypeProvider>()

  api.get(
    '/v1/series',
    { onRequest: deps.auth.requireUser(['admin', 'center', 'inspector']), schema: { summary: "One device's readings, raw or per window", tags: ['series'], querystring: SeriesQuery } },
    async (req) => {
      const q = req.query
      const device = visibleDevice(deps, req.user!, q.device)
      const { from, to } = timeWindow(q.from, q.to, DAY, deps.now())
      const frame = { device: q.device, ...(device?.enterprise ? { enterprise: device.enterprise } : {}), from: new Date(from).toISOString(), to: new Date(to).toISOString() }
      if (q.window !== undefined) {
        if (q.quantity === undefined) throw new ApiError('CLOUD_REQUEST_INVALID', 'a windowed series needs a quantity', [{ path: '/quantity', message: 'required with window' }])
        const window = q.window
        if ((to - from) / windowMs[window] > MAX_BUCKETS) {
          throw new ApiError('CLOUD_REQUEST_INVALID', 'too many windows', [{ path: '/window', message: `at most ${MAX_BUCKETS} windows per request; use a wider window` }])
        }
        const buckets = await deps.store.series({ device: q.device, quantity: q.quantity, from, to, window })
        return {
          ...frame,
          quantity: q.quantity,
          unit: device?.latest[q.quantity]?.unit,
          window,
          buckets: buckets.map((b) => ({ time: new Date(b.ts).toISOString(), mean: b.mean, min: b.min, max: b.max, count: b.count })),
        }
      }
      const limit = boundedLimit(q.limit, 10_000, 100_000)
      const points = await deps.store.readings({ device: q.device, from, to, limit, ...(q.quantity ? { quantity: q.quantity } : {}) })
      return {
        ...frame,
        ...(q.quantity ? { quantity: q.quantity } : {}),
        truncated: points.length >= limit,
        points: points.map((p) => ({ time: new Date(p.ts).toISOString(), quantity: p.quantity, value: p.value, unit: p.unit, id: p.id })),
      }
    },
  )

  api.get(
    '/v1/gaps',
    { onRequest: deps.auth.requireUser(['admin', 'center']), schema: { summary: 'What gateways had to drop (quota, TTL), per device', tags: ['series'], querystring: GapsQuery } },
    async (req) => {
      const q = req.query
      const { from, to } = timeWindow(q.from, q.to, 7 * DAY, deps.now())
      const limit = boundedLimit(q.limit, 1000, 10_000)
      const offices = officeFilter(req.user!)
      if (q.office !== undefined && offices && !offices.has(q.office)) return { from: new Date(from).toISOString(), to: new Date(to).toISOString(), gaps: [] }
      const gaps = await deps.store.gaps({ ...(q.office ? { office: q.office } : {}), from, to, limit })
      const selected = gaps.filter((g) => (!offices || offices.has(g.office)) && (q.device === undefined || g.device === q.device))
      return {
        from: new Date(from).toISOString(),
        to: new Date(to).toISOString(),
        gaps: selected.map((g) => ({ ...g, recordedAt: new Date(g.ts).toISOString(), from: new Date(g.from).toISOString(), to: new Date(g.to).toISOString() })),
      }
    },
  )
}

/** The device's record when the caller may see its readings; 404 otherwise (admins may ask for any). */
function visibleDevice(deps: AppDeps, user: UserPrincipal, id: string) {
  const device = deps.field.device(id)
  if (!device) {
    if (user.role === 'admin') return undefined
    throw new ApiError('CLOUD_NOT_FOUND', `no device "${id}"`)
  }
  if (!canSee(user, { office: device.office, enterprise: device.enterprise, kind: 'reading' })) throw new ApiError('CLOUD_NOT_FOUND', `no device "${id}"`)
  return device
}
