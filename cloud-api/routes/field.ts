/**
 * The field as the center sees it.
 *
 *   GET /v1/devices    devices with office, enterprise, status, latest reading per quantity, and
 *                      how many of their alerts are open (admins, center staff, inspectors; an
 *                      inspector also sees a sensor moved away from their enterprise, as it left)
 *   GET /v1/gateways   each office's gateway: last seen, link state, backlog reported, version
 *                      (admins, center staff)
 */
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { Ident } from '../../contracts/envelope.ts'
import { canSee, officeFilter } from '../access/principal.ts'
import type { AppDeps } from '../app.ts'
import type { DeviceInfo } from '../center/field.ts'

/** A gateway that has not delivered for this long is shown as down (it sends at least every few seconds when healthy). */
const LINK_DOWN_AFTER_MS = 2 * 60_000

const DevicesQuery = Type.Object({ office: Type.Optional(Ident), enterprise: Type.Optional(Ident) }, { additionalProperties: false })

export function fieldRoutes(app: FastifyInstance, deps: AppDeps): void {
  const api = app.withTypeProvider<TypeBoxTypeProvider>()

  api.get(
    '/v1/devices',
    { onRequest: deps.auth.requireUser(['admin', 'center', 'inspector']), schema: { summary: 'Devices with their latest readings', tags: ['field'], querystring: DevicesQuery } },
    async (req) => {
      const user = req.user!
      const open = openAlertsByDevice(deps, user)
      const visible = (office: string, enterprise: string | undefined) => canSee(user, { office, enterprise, kind: 'reading' })
      const devices = deps.field
        .allDevices()
        .flatMap((d) => {
          const latest = (l: DeviceInfo['latest']) => Object.fromEntries(Object.entries(l).map(([q, r]) => [q, { value: r.value, unit: r.unit, time: new Date(r.ts).toISOString() }]))
          const common = { id: d.id, office: d.office, gateway: d.gateway, openAlerts: open.get(`${d.office}/${d.id}`) ?? 0 }
          if (visible(d.office, d.enterprise)) {
            return [
              {
                ...common,
                ...(d.enterprise ? { enterprise: d.enterprise, enterpriseName: enterpriseName(deps, d.enterprise) } : {}),
                lastSeen: new Date(d.lastSeen).toISOString(),
                ...(d.status ? { status: d.status } : {}),
                latest: latest(d.latest),
                levels: deps.org.levelsFor(d.office, d.enterprise),
              },
            ]
          }
          // A sensor moved away from the caller's enterprise: listed as it was when it left
          // them (its history stays theirs), without its new owner, status or values.
          const left = Object.entries(d.former ?? {})
            .filter(([enterprise]) => visible(d.office, enterprise))
            .sort(([, x], [, y]) => y.until - x.until)[0]
          if (!left) return []
          const [enterprise, was] = left
          return [
            {
              ...common,
              enterprise,
              enterpriseName: enterpriseName(deps, enterprise),
              movedAway: true,
              lastSeen: new Date(was.until).toISOString(),
              latest: latest(was.latest),
              levels: deps.org.levelsFor(d.office, enterprise),
            },
          ]
        })
        .filter((d) => (req.query.office === undefined || d.office === req.query.office) && (req.query.enterprise === undefined || d.enterprise === req.query.enterprise))
        .sort((a, b) => (a.id < b.id ? -1 : 1))
      return { devices }
    },
  )

  api.get('/v1/gateways', { onRequest: deps.auth.requireUser(['admin', 'center']), schema: { summary: 'Gateway health per office', tags: ['field'] } }, async (req) => {
    const offices = officeFilter(req.user!)
    const now = deps.now()
    const seen = new Map(deps.field.allGateways().map((g) => [g.id, g]))
    // Registered gateways only: one removed (by the CLI, say) may still have health in memory.
    const ids = new Set(deps.directory.gateways().map((g) => g.id))
    const gateways = [...ids]
      .map((id) => {
        // Health recorded for another office than the gateway is registered for now is not this
        // registration's (an id reused, or health kept by a version that did not forget it).
        const office = deps.directory.gateway(id)?.office ?? ''
        const recorded = seen.get(id)
        const health = recorded?.office === office ? recorded : undefined
        return {
          id,
          office,
          officeName: deps.org.office(office)?.name,
          link: health === undefined ? 'never_seen' : now - health.lastSeen > LINK_DOWN_AFTER_MS ? 'down' : 'up',
          ...(health
            ? {
                lastSeen: new Date(health.lastSeen).toISOString(),
                secondsSinceSeen: Math.max(0, Math.round((now - health.lastSeen) / 1000)),
                ...(health.backlog !== undefined ? { backlog: health.backlog } : {}),
                ...(health.version !== undefined ? { version: health.version } : {}),
                batches: health.batches,
                envelopes: health.envelopes,
              }
            : {}),
        }
      })
      .filter((g) => !offices || offices.has(g.office))
      .sort((a, b) => (a.id < b.id ? -1 : 1))
    return { gateways }
  })
}

function openAlertsByDevice(deps: AppDeps, user: Parameters<typeof canSee>[0]): Map<string, number> {
  const counts = new Map<string, number>()
  const { items } = deps.casebook.list({ kind: 'alert', offices: officeFilter(user), states: ['raised', 'acknowledged', 'assigned'], limit: 100_000, visible: (s) => canSee(user, s) })
  // By office and device: device ids are unique per office only.
  for (const a of items) counts.set(`${a.office}/${a.device}`, (counts.get(`${a.office}/${a.device}`) ?? 0) + 1)
  return counts
}

function enterpriseName(deps: AppDeps, id: string): string | undefined {
  const office = deps.org.office(deps.org.officeOfEnterprise(id) ?? '')
  return office?.enterprises.find((e) => e.id === id)?.name
}
