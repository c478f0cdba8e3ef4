/**
 * Alerts and incidents, and the work done on them (cloud-api/lifecycle/casebook.ts).
 *
 *   GET  /v1/alerts                  list (newest first), filtered and scoped to the caller
 *   GET  /v1/alerts/:id              one alert, its full history, and its device's recent readings
 *   POST /v1/alerts/:id/acknowledge  {note?, version?}
 *   POST /v1/alerts/:id/assign       {department, note?, version?}
 *   POST /v1/alerts/:id/resolve      {note?, version?}
 *   POST /v1/alerts/:id/close        {note?, version?}
 * and the same under /v1/incidents.
 *
 * Who: alerts are seen by admins and center staff (their district), inspectors (sensor alerts of
 * their enterprises) and supervisors (patrol alerts of their offices); incidents by admins, center
 * staff and supervisors. Only center staff act. A case outside the caller's scope is answered
 * 404, as if it did not exist, so ids cannot be probed.
 */
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { Ident, Severities } from '../../contracts/envelope.ts'
import { canAct, canSee, officeFilter, readingEnterprises, type Role } from '../access/principal.ts'
import { Actions, CaseStates, subjectOf, type CaseState } from '../lifecycle/casebook.ts'
import { ApiError } from '../errors.ts'
import { StoreUnavailableError } from '../store/store.ts'
import type { AppDeps } from '../app.ts'
import { boundedLimit, QueryTime, timeWindowOptional } from './params.ts'

const StateFilter = Type.String({ pattern: '^(open|raised|acknowledged|assigned|resolved|closed)(,(open|raised|acknowledged|assigned|resolved|closed))*$', description: 'Comma-separated states; `open` = raised, acknowledged, assigned' })

const ListQuery = Type.Object(
  {
    state: Type.Optional(StateFilter),
    severity: Type.Optional(Type.Enum([...Severities])),
    type: Type.Optional(Type.String({ maxLength: 64 })),
    device: Type.Optional(Ident),
    office: Type.Optional(Ident),
    cleared: Type.Optional(Type.Enum(['true', 'false'], { description: 'Whether the gateway has cleared it (the condition is over)' })),
    from: Type.Optional(QueryTime),
    to: Type.Optional(QueryTime),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,5}$' })),
  },
  { additionalProperties: false },
)
const IdParams = Type.Object({ id: Type.String({ minLength: 3, maxLength: 96 }) }, { additionalProperties: false })
const ActionBody = Type.Object(
  {
    note: Type.Optional(Type.String({ maxLength: 2000 })),
    department: Type.Optional(Ident),
    /** The version the caller last saw; a stale one is answered 409 instead of overwriting a colleague. */
    version: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
)

const OPEN: CaseState[] = ['raised', 'acknowledged', 'assigned']

export function caseRoutes(app: FastifyInstance, deps: AppDeps, kind: 'alert' | 'incident'): void {
  const api = app.withTypeProvider<TypeBoxTypeProvider>()
  const plural = `${kind}s`
  const readers: Role[] = kind === 'alert' ? ['admin', 'center', 'inspector', 'supervisor'] : ['admin', 'center', 'supervisor']
  const tags = [plural]

  api.get(`/v1/${plural}`, { onRequest: deps.auth.requireUser(readers), schema: { summary: `List ${plural} in the caller's scope`, tags, querystring: ListQuery } }, async (req) => {
    const q = req.query
    const user = req.user!
    const states = q.state ? [...new Set(q.state.split(',').flatMap((s) => (s === 'open' ? OPEN : [s as CaseState])))] : undefined
    const { from, to } = timeWindowOptional(q.from, q.to)
    const limit = boundedLimit(q.limit, 200, 5000)
    const { total, items } = deps.casebook.list({
      kind,
      offices: officeFilter(user),
      ...(states ? { states } : {}),
      ...(q.severity ? { severity: q.severity } : {}),
      ...(q.type ? { type: q.type } : {}),
      ...(q.device ? { device: q.device } : {}),
      ...(q.office ? { office: q.office } : {}),
      ...(q.cleared !== undefined ? { cleared: q.cleared === 'true' } : {}),
      ...(from !== undefined ? { from } : {}),
      ...(to !== undefined ? { to } : {}),
      visible: user.role === 'admin' || user.role === 'center' ? undefined : (s) => canSee(user, s),
      limit,
    })
    return { total, [plural]: items }
  })

  api.get(`/v1/${plural}/:id`, { onRequest: deps.auth.requireUser(readers), schema: { summary: `One ${kind} with its full history`, tags, params: IdParams } }, async (req) => {
    const user = req.user!
    const c = deps.casebook.get(req.params.id)
    if (!c || c.kind !== kind || !canSee(user, subjectOf(c))) throw new ApiError('CLOUD_NOT_FOUND', `no ${kind} "${req.params.id}"`)
    const history = deps.casebook.history(c.id)
    let readings: { time: string; value: number; unit: string }[] | undefined
    let readingsUnavailable = false
    const quantity = c.detail.quantity
    if (kind === 'alert' && typeof quantity === 'string') {
      // The device's last hour around the alert: what the detail view draws.
      const to = Math.min(deps.now(), Date.parse(c.updatedAt) + 10 * 60_000)
      try {
        const enterprises = readingEnterprises(user, [c.enterprise])
        const points = await deps.store.readings({ device: c.device, office: c.office, ...(enterprises ? { enterprises } : {}), quantity, from: Date.parse(c.raisedAt) - 60 * 60_000, to, limit: 2000 })
        readings = points.map((p) => ({ time: new Date(p.ts).toISOString(), value: p.value, unit: p.unit }))
      } catch (err) {
        // The case, its history and the actions come from the center database: staff can still
        // open and act on an alert while the event store is down; only the chart waits for it.
        if (!(err instanceof StoreUnavailableError)) throw err
        readingsUnavailable = true
        req.log.warn({ code: 'CLOUD_STORE_UNAVAILABLE', alert: c.id, err: err.message }, 'alert shown without its readings: event store unavailable')
      }
    }
    return { [kind]: c, history, ...(readings ? { readings } : {}), ...(readingsUnavailable ? { readingsUnavailable } : {}), mayAct: canAct(user, subjectOf(c)) }
  })

  for (const action of Actions) {
    api.post(
      `/v1/${plural}/:id/${action}`,
      {
        onRequest: deps.auth.requireUser(['center'], 'write'),
        schema: {
          summary: `${action[0].toUpperCase()}${action.slice(1)} a ${kind}`,
          description: action === 'assign' ? `Dispatch to a department (GET /v1/me lists them). From acknowledged or assigned.` : undefined,
          tags,
          params: IdParams,
          body: ActionBody,
        },
      },
      async (req) => {
        const user = req.user!
        const c = deps.casebook.act(req.params.id, action, user.name, req.body ?? {}, (view) => canSee(user, subjectOf(view)), kind)
        deps.metrics.transitions.inc({ kind, action })
        req.log.info({ code: 'CLOUD_CASE_ACTION', kind, id: c.id, action, user: user.name, state: c.state }, `${kind} ${action}`)
        return { [kind]: c }
      },
    )
  }
}

export { CaseStates }
