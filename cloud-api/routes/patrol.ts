/**
 * Patrol tours and compliance, for supervisors (their offices), center staff (their district) and
 * admins.
 *
 *   GET /v1/patrol/tours?office&day=YYYY-MM-DD           the day's tours, checkpoint by checkpoint
 *   GET /v1/patrol/compliance?office&from=DAY&to=DAY     per route and day, per staff and day
 *
 * Days are the office's local days. At most 31 days per request.
 */
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { Ident } from '../../contracts/envelope.ts'
import { officeFilter, type UserPrincipal } from '../access/principal.ts'
import type { OfficeConfig } from '../access/organization.ts'
import { ApiError } from '../errors.ts'
import { DAY_MS, localDay, localMidnight, summarize, toursOfDay, type Tour } from '../patrol/compliance.ts'
import type { AppDeps } from '../app.ts'

const Day = Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$', description: 'Local day, YYYY-MM-DD' })
const ToursQuery = Type.Object({ office: Type.Optional(Ident), day: Type.Optional(Day) }, { additionalProperties: false })
const ComplianceQuery = Type.Object({ office: Type.Optional(Ident), from: Type.Optional(Day), to: Type.Optional(Day) }, { additionalProperties: false })
const MAX_DAYS = 31

export function patrolRoutes(app: FastifyInstance, deps: AppDeps): void {
  const api = app.withTypeProvider<TypeBoxTypeProvider>()
  const roles = ['admin', 'center', 'supervisor'] as const

  api.get('/v1/patrol/tours', { onRequest: deps.auth.requireUser(roles), schema: { summary: "A day's tours, checkpoint by checkpoint", tags: ['patrol'], querystring: ToursQuery } }, async (req) => {
    const tours: Tour[] = []
    if (req.query.day !== undefined) calendarDay(req.query.day, '/day')
    for (const office of officesFor(deps, req.user!, req.query.office)) {
      const day = req.query.day ?? localDay(deps.now(), office.utcOffsetMinutes)
      const names = new Map((office.checkpoints ?? []).map((c) => [c.id, c.name]))
      tours.push(
        ...(await judge(deps, office, [day])).map((t) => ({
          ...t,
          office: office.id,
          checkpoints: t.checkpoints.map((c) => (names.has(c.checkpoint) ? { ...c, name: names.get(c.checkpoint) } : c)),
        })),
      )
    }
    return { tours }
  })

  api.get(
    '/v1/patrol/compliance',
    { onRequest: deps.auth.requireUser(roles), schema: { summary: 'Patrol compliance per route, staff and day', tags: ['patrol'], querystring: ComplianceQuery } },
    async (req) => {
      const offices = officesFor(deps, req.user!, req.query.office)
      const result = []
      for (const office of offices) {
        const today = localDay(deps.now(), office.utcOffsetMinutes)
        const to = req.query.to ?? today
        const from = req.query.from ?? to
        const days = daysBetween(from, to)
        const tours = await judge(deps, office, days)
        result.push({ office: office.id, officeName: office.name, from, to, ...summarize(tours) })
      }
      return { offices: result }
    },
  )
}

function officesFor(deps: AppDeps, user: UserPrincipal, wanted: string | undefined): OfficeConfig[] {
  const allowed = officeFilter(user)
  if (wanted !== undefined) {
    const office = deps.org.office(wanted)
    if (!office || (allowed && !allowed.has(wanted))) throw new ApiError('CLOUD_NOT_FOUND', `no office "${wanted}"`)
    return [office]
  }
  return deps.org.allOffices().filter((o) => !allowed || allowed.has(o.id))
}

async function judge(deps: AppDeps, office: OfficeConfig, days: string[]): Promise<Tour[]> {
  if (office.routes.length === 0 || days.length === 0) return []
  const from = localMidnight(days[0], office.utcOffsetMinutes) - DAY_MS
  const to = localMidnight(days.at(-1)!, office.utcOffsetMinutes) + 2 * DAY_MS
  const scans = await deps.store.scans({ office: office.id, from, to, limit: 500_000 })
  return days.flatMap((day) => toursOfDay(office.routes, scans, day, office.utcOffsetMinutes, deps.now()))
}

/** Epoch ms of a YYYY-MM-DD that exists on the calendar (not 2026-02-30); 400 naming the parameter otherwise. */
function calendarDay(day: string, path: string): number {
  const t = Date.parse(`${day}T00:00:00Z`)
  if (Number.isNaN(t) || new Date(t).toISOString().slice(0, 10) !== day) {
    throw new ApiError('CLOUD_REQUEST_INVALID', 'bad day', [{ path, message: `"${day}" is not a calendar day` }])
  }
  return t
}

function daysBetween(from: string, to: string): string[] {
  const a = calendarDay(from, '/from')
  const b = calendarDay(to, '/to')
  if (a > b) throw new ApiError('CLOUD_REQUEST_INVALID', 'empty range', [{ path: '/from', message: 'must not be after to' }])
  const n = (b - a) / DAY_MS + 1
  if (n > MAX_DAYS) throw new ApiError('CLOUD_REQUEST_INVALID', 'range too long', [{ path: '/from', message: `at most ${MAX_DAYS} days per request` }])
  return Array.from({ length: n }, (_, i) => new Date(a + i * DAY_MS).toISOString().slice(0, 10))
}
