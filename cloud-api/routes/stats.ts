/**
 * Alert statistics for the analysis view.
 *
 *   GET /v1/stats/alerts?from&to&office&kind=alert|incident
 *     counts per type, per office and per local day; time to acknowledge and time to resolve
 *     (count, mean, median, p90, in seconds), overall and per severity; escalations.
 *
 * Computed from the casebook (the center's authoritative lifecycle), scoped like the alert list.
 */
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { Ident } from '../../contracts/envelope.ts'
import { canSee, officeFilter } from '../access/principal.ts'
import { localDay } from '../patrol/compliance.ts'
import type { AppDeps } from '../app.ts'
import { ApiError } from '../errors.ts'
import { QueryTime, timeWindow } from './params.ts'

const StatsQuery = Type.Object(
  { office: Type.Optional(Ident), from: Type.Optional(QueryTime), to: Type.Optional(QueryTime), kind: Type.Optional(Type.Enum(['alert', 'incident'])) },
  { additionalProperties: false },
)

const MAX_RANGE_MS = 366 * 86_400_000

export interface Durations {
  count: number
  meanSeconds?: number
  medianSeconds?: number
  p90Seconds?: number
}

export function durations(ms: number[]): Durations {
  if (ms.length === 0) return { count: 0 }
  const sorted = [...ms].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]
  const s = (v: number) => Math.round(v / 100) / 10
  return { count: sorted.length, meanSeconds: s(sorted.reduce((a, b) => a + b, 0) / sorted.length), medianSeconds: s(at(0.5)), p90Seconds: s(at(0.9)) }
}

export function statsRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.withTypeProvider<TypeBoxTypeProvider>().get(
    '/v1/stats/alerts',
    { onRequest: deps.auth.requireUser(['admin', 'center', 'inspector', 'supervisor']), schema: { summary: 'Counts, time to acknowledge, time to resolve', tags: ['stats'], querystring: StatsQuery } },
    async (req) => {
      const user = req.user!
      const q = req.query
      const kind = q.kind ?? 'alert'
      const { from, to } = timeWindow(q.from, q.to, 30 * 86_400_000, deps.now())
      if (to - from > MAX_RANGE_MS) throw new ApiError('CLOUD_REQUEST_INVALID', 'range too long', [{ path: '/from', message: 'at most 366 days per request' }])
      const { items } = deps.casebook.list({
        kind,
        offices: officeFilter(user),
        ...(q.office ? { office: q.office } : {}),
        from,
        to,
        visible: (s) => canSee(user, s),
        limit: 1_000_000,
      })
      const byType: Record<string, number> = {}
      const byOffice: Record<string, number> = {}
      const byDay: Record<string, number> = {}
      const ack: number[] = []
      const resolve: number[] = []
      const ackBySeverity: Record<string, number[]> = {}
      const resolveBySeverity: Record<string, number[]> = {}
      let escalated = 0
      for (const c of items) {
        byType[c.type] = (byType[c.type] ?? 0) + 1
        byOffice[c.office] = (byOffice[c.office] ?? 0) + 1
        const day = localDay(Date.parse(c.raisedAt), deps.org.office(c.office)?.utcOffsetMinutes ?? 0)
        byDay[day] = (byDay[day] ?? 0) + 1
        if (c.escalations > 0) escalated++
        const raised = Date.parse(c.raisedAt)
        if (c.acknowledgedAt) {
          ack.push(Date.parse(c.acknowledgedAt) - raised)
          ;(ackBySeverity[c.severity] ??= []).push(Date.parse(c.acknowledgedAt) - raised)
        }
        if (c.resolvedAt) {
          resolve.push(Date.parse(c.resolvedAt) - raised)
          ;(resolveBySeverity[c.severity] ??= []).push(Date.parse(c.resolvedAt) - raised)
        }
      }
      const perSeverity = (m: Record<string, number[]>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, durations(v)]))
      return {
        kind,
        from: new Date(from).toISOString(),
        to: new Date(to).toISOString(),
        total: items.length,
        escalated,
        byType,
        byOffice,
        byDay,
        timeToAcknowledge: { ...durations(ack), bySeverity: perSeverity(ackBySeverity) },
        timeToResolve: { ...durations(resolve), bySeverity: perSeverity(resolveBySeverity) },
      }
    },
  )
}
