/**
 * Sensor history and data gaps.
 *
 *   GET /v1/series?device&quantity&from&to&window=1m|1h|1d   per-window mean, min, max, count
 *   GET /v1/series?device[&quantity]&from&to[&limit]         raw readings, oldest first
 *   GET /v1/gaps?office&device&from&to                       what gateways had to drop
 *
 * Series are for admins, center staff (their district's devices) and inspectors (their
 * enterprises' devices, and only the readings taken while the device was their enterprise's).
 * A device the caller may not see is answered 404, like an unknown one.
 */
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { Ident } from '../../contracts/envelope.ts'
import { canSee, officeFilter, readingEnterprises, type UserPrincipal } from '../access/principal.ts'
import { ownersOf } from '../center/field.ts'
import { windowMs } from '../store/store.ts'
import { ApiError } from '../errors.ts'
import type { AppDeps } from '../app.ts'
import { boundedLimit, Limit, QueryTime, timeWindow } from './params.ts'

const SeriesQuery = Type.Object(
  {
    device: Ident,
    /** The device's office; needed only when two offices have a device of this id. */
    office: Type.Optional(Ident),
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
      const device = visibleDevice(deps, req.user!, q.device, q.office)
      const office = device?.office ?? q.office
      const enterprises = device ? readingEnterprises(req.user!, ownersOf(device)) : undefined
      const { from, to } = timeWindow(q.from, q.to, DAY, deps.now())
      // The owner is named only to who may see it: a former owner's inspector is not told where the sensor went.
      const owner = device?.enterprise !== undefined && (enterprises === undefined || enterprises.includes(device.enterprise)) ? device.enterprise : undefined
      // The unit as last measured for an owner the caller may see.
      const unitOf = (quantity: string) =>
        owner !== undefined || enterprises === undefined ? device?.latest[quantity]?.unit : enterprises.map((e) => device?.former?.[e]?.latest[quantity]?.unit).find((u) => u !== undefined)
      const frame = { device: q.device, ...(office ? { office } : {}), ...(owner ? { enterprise: owner } : {}), from: new Date(from).toISOString(), to: new Date(to).toISOString() }
      if (q.window !== undefined) {
        if (q.quantity === undefined) throw new ApiError('CLOUD_REQUEST_INVALID', 'a windowed series needs a quantity', [{ path: '/quantity', message: 'required with window' }])
        const window = q.window
        if ((to - from) / windowMs[window] > MAX_BUCKETS) {
          throw new ApiError('CLOUD_REQUEST_INVALID', 'too many windows', [{ path: '/window', message: `at most ${MAX_BUCKETS} windows per request; use a wider window` }])
        }
        const buckets = await deps.store.series({ device: q.device, ...(office ? { office } : {}), ...(enterprises ? { enterprises } : {}), quantity: q.quantity, from, to, window })
        return {
          ...frame,
          quantity: q.quantity,
          unit: unitOf(q.quantity),
          window,
          buckets: buckets.map((b) => ({ time: new Date(b.ts).toISOString(), mean: b.mean, min: b.min, max: b.max, count: b.count })),
        }
      }
      const limit = boundedLimit(q.limit, 10_000, 100_000)
      const points = await deps.store.readings({ device: q.device, ...(office ? { office } : {}), ...(enterprises ? { enterprises } : {}), from, to, limit, ...(q.quantity ? { quantity: q.quantity } : {}) })
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
      // Asked per office in the caller's scope, so the limit counts only gaps they may see.
      const asked = q.office !== undefined ? [q.office] : offices ? [...offices] : [undefined]
      const gaps = (await Promise.all(asked.map((office) => deps.store.gaps({ ...(office ? { office } : {}), from, to, limit }))))
        .flat()
        .sort((x, y) => x.ts - y.ts)
      const selected = gaps.filter((g) => q.device === undefined || g.device === q.device).slice(0, limit)
      return {
        from: new Date(from).toISOString(),
        to: new Date(to).toISOString(),
        gaps: selected.map((g) => ({ ...g, recordedAt: new Date(g.ts).toISOString(), from: new Date(g.from).toISOString(), to: new Date(g.to).toISOString() })),
      }
    },
  )
}

/**
 * The device the caller asks for, when they may see its readings (or some of them: an inspector
 * sees a sensor that was their enterprise's before it moved, for what it measured then); 404
 * otherwise, as for an unknown one. Device ids are unique per office: when several offices visible to the caller have
 * one, `office` must say which (400 naming them). Admins may ask for a device the center has not
 * indexed (data from before it kept the index), by id and office as given.
 */
function visibleDevice(deps: AppDeps, user: UserPrincipal, id: string, office: string | undefined) {
  const candidates = deps.field
    .devicesNamed(id)
    .filter(
      (d) =>
        (office === undefined || d.office === office) &&
        ownersOf(d).some((enterprise) => canSee(user, { office: d.office, enterprise, kind: 'reading' })),
    )
  if (candidates.length === 1) return candidates[0]
  if (candidates.length > 1) {
    throw new ApiError('CLOUD_REQUEST_INVALID', `device "${id}" exists in several offices`, [{ path: '/office', message: `say which: ${candidates.map((d) => d.office).join(', ')}` }])
  }
  if (user.role === 'admin') return undefined
  throw new ApiError('CLOUD_NOT_FOUND', `no device "${id}"`)
}
