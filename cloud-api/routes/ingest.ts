/**
 * POST /v1/ingest: a gateway's batch into the event store (contracts/ingest.ts).
 *
 * All or nothing for a bad batch: every envelope is checked before any is written, so a 400 means
 * nothing was stored. Each envelope must come from the authenticated gateway and its office.
 */
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Envelope } from '../../contracts/envelope.ts'
import { IngestRequest, IngestResponse } from '../../contracts/ingest.ts'
import { idProblems, payloadProblems, type SchemaProblem } from '../../contracts/validate.ts'
import { ApiError } from '../errors.ts'
import type { AppDeps } from '../app.ts'
import { ingestRateLimit } from '../plugins/protection.ts'

/** What a gateway says about itself in its request headers. */
function reported(headers: Record<string, string | string[] | undefined>): { version?: string; backlog?: number } {
  const version = headers['x-gridwatch-version']
  const backlog = Number(headers['x-gridwatch-backlog'])
  return {
    ...(typeof version === 'string' && version.length <= 64 ? { version } : {}),
    ...(Number.isSafeInteger(backlog) && backlog >= 0 ? { backlog } : {}),
  }
}

export function ingestRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.withTypeProvider<TypeBoxTypeProvider>().post(
    '/v1/ingest',
    {
      onRequest: deps.auth.requireGateway,
      config: ingestRateLimit(deps.config),
      schema: {
        summary: 'A gateway delivers a batch of envelopes',
        description:
          'Idempotent by envelope id, answered per id. All or nothing for an invalid batch (400 naming each problem). ' +
          'Gateways may report themselves in the headers x-gridwatch-version and x-gridwatch-backlog (envelopes still waiting in their outbox).',
        tags: ['ingest'],
        body: IngestRequest,
        response: { 200: IngestResponse },
      },
    },
    async (req) => {
      const gateway = req.gatewayPrincipal!
      const envelopes = req.body.envelopes as unknown as Envelope[]
      const problems: SchemaProblem[] = []
      const foreign: SchemaProblem[] = []
      for (let i = 0; i < envelopes.length && problems.length < 20; i++) {
        const e = envelopes[i]
        const at = `/envelopes/${i}`
        problems.push(...payloadProblems(e, at), ...idProblems(e, at))
        // An enterprise the center knows in another office: the device is misconfigured (or lies),
        // and its data would reach that enterprise's inspectors labelled as theirs. A problem of
        // this envelope (400, set aside by the gateway), not of the batch: the rest still flows.
        // An enterprise the center does not know yet is taken as it comes.
        const home = e.enterprise === undefined ? undefined : deps.org.officeOfEnterprise(e.enterprise)
        if (home !== undefined && home !== gateway.office) problems.push({ path: `${at}/enterprise`, message: `enterprise "${e.enterprise}" is in office "${home}", not in "${gateway.office}"` })
        if (e.gateway !== gateway.id) foreign.push({ path: `${at}/gateway`, message: `this token belongs to gateway "${gateway.id}"` })
        if (e.office !== gateway.office) foreign.push({ path: `${at}/office`, message: `gateway "${gateway.id}" serves office "${gateway.office}"` })
        // An alert or incident is named by the envelope that raised it, so by its own gateway:
        // an event for another gateway's alert would let one office change another's.
        const caseId: unknown = e.kind === 'alert' ? e.payload.alertId : e.kind === 'incident' ? e.payload.incidentId : undefined
        if (typeof caseId === 'string' && !caseId.startsWith(`${gateway.id}:`)) {
          foreign.push({ path: `${at}/payload/${e.kind === 'alert' ? 'alertId' : 'incidentId'}`, message: `must be an id of gateway "${gateway.id}" (${gateway.id}:<seq>)` })
        }
      }
      if (problems.length > 0) {
        throw new ApiError('CLOUD_INGEST_INVALID', `${problems.length} problem(s) in the batch; nothing was stored`, problems.slice(0, 20))
      }
      if (foreign.length > 0) {
        throw new ApiError('CLOUD_FORBIDDEN', 'the batch holds envelopes of another gateway or office; nothing was stored', foreign.slice(0, 20))
      }

      // Alerts and incidents open or move their cases first: the casebook commit is what numbers
      // and announces them on the live stream, so an alert reaches the consoles without waiting
      // on the event-store write as well. The casebook is durable on its own (center.db) and
      // tracks each case's sequence, so when the store write below fails (503) and the gateway
      // sends the batch again, the casebook takes nothing twice.
      const cases = envelopes.filter((e) => e.kind === 'alert' || e.kind === 'incident')
      if (cases.length > 0) {
        const applying = performance.now()
        deps.casebook.applyEnvelopes(cases)
        deps.metrics.casebookSeconds.observe((performance.now() - applying) / 1000)
      }

      const started = performance.now()
      const statuses = await deps.store.write(envelopes)
      deps.metrics.storeSeconds.observe((performance.now() - started) / 1000)

      const fresh: Envelope[] = []
      // Counted per kind and status, then added once each: a labelled inc() per envelope cost
      // ~0.7 ms a 2,000-envelope batch.
      const counted = new Map<string, { kind: string; status: string; n: number }>()
      const results = envelopes.map((e, i) => {
        const status = statuses[i]
        const key = e.kind + status
        const c = counted.get(key)
        if (c) c.n++
        else counted.set(key, { kind: e.kind, status, n: 1 })
        if (status === 'stored') fresh.push(e)
        return { id: e.id, status }
      })
      for (const { kind, status, n } of counted.values()) deps.metrics.ingested.inc({ kind, status }, n)
      deps.field.noteEnvelopes(envelopes)
      deps.field.noteBatch(gateway, deps.now(), envelopes.length, reported(req.headers))
      deps.bus.publish(fresh)
      return { results }
    },
  )
}
