/**
 * GET /v1/stream: Server-Sent Events of what the center has just received or decided, filtered by
 * the caller's scope.
 *
 *   GET /v1/stream?kinds=alert_update,incident_update      (the default)
 *
 * Events:
 * - `alert_update` / `incident_update`: the whole alert or incident after any change (raised by a
 *   gateway, updated, cleared, acknowledged, assigned, resolved, closed, escalated);
 * - `alert`: a gateway's alert envelope as received;
 * - `reading`, `scan`, `status`, `camera`, `report`, `incident`, `aggregate`, `gap`: raw envelopes.
 *
 * The first three carry `id:` (the feed's sequence) and are replayed after a reconnect from
 * `Last-Event-ID` (or `?lastEventId=`), up to 7 days or 200,000 events back. Raw data is live
 * only. A client that reads too slowly to keep its buffer under 1 MiB is disconnected rather than
 * allowed to grow memory; it reconnects and replays. EventSource cannot send headers, so this
 * route alone also takes the token as `?access_token=` (RFC 6750 §2.3).
 */
import type { ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { EnvelopeKinds, type Envelope } from '../../contracts/envelope.ts'
import { canSee, Roles, type UserPrincipal } from '../access/principal.ts'
import type { FeedEvent } from '../live/feed.ts'
import { ApiError } from '../errors.ts'
import type { AppDeps } from '../app.ts'

const MAX_BUFFERED_BYTES = 1024 * 1024
const HEARTBEAT_MS = 15_000
const MAX_REPLAY = 10_000
const CASE_EVENTS = ['alert_update', 'incident_update'] as const
const EVENTS: readonly string[] = [...CASE_EVENTS, ...EnvelopeKinds]

const StreamQuery = Type.Object(
  {
    kinds: Type.Optional(Type.String({ maxLength: 200 })),
    lastEventId: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
    access_token: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
)

function frame(e: FeedEvent): string {
  return `${e.seq !== undefined ? `id: ${e.seq}\n` : ''}event: ${e.event}\ndata: ${e.data}\n\n`
}

export function streamRoutes(app: FastifyInstance, deps: AppDeps): void {
  const open = new Set<ServerResponse>()
  // A live stream never ends on its own; without this, close() would wait for every console.
  app.addHook('preClose', async () => {
    for (const res of open) res.end()
  })
  app.withTypeProvider<TypeBoxTypeProvider>().get(
    '/v1/stream',
    { onRequest: deps.auth.requireUser(Roles), schema: { summary: 'Live events (SSE), scoped, with Last-Event-ID replay', tags: ['live'], querystring: StreamQuery } },
    (req, reply) => {
      const user = req.user!
      const kinds = new Set<string>((req.query.kinds ?? CASE_EVENTS.join(',')).split(',').map((k) => k.trim()))
      for (const k of kinds) {
        if (!EVENTS.includes(k)) throw new ApiError('CLOUD_REQUEST_INVALID', 'unknown kind', [{ path: '/kinds', message: `"${k}" is not one of ${EVENTS.join(', ')}` }])
      }
      const lastHeader = req.headers['last-event-id']
      const lastText = typeof lastHeader === 'string' && /^[0-9]{1,15}$/.test(lastHeader.trim()) ? lastHeader.trim() : req.query.lastEventId
      const wanted = (e: FeedEvent) => kinds.has(e.event) && canSee(user, e.subject)

      reply.hijack()
      const res = reply.raw
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      })
      deps.metrics.streamClients.inc({ event: 'opened' })

      const send = (events: readonly FeedEvent[]) => {
        let chunk = ''
        for (const e of events) if (wanted(e)) chunk += frame(e)
        if (chunk === '') return
        res.write(chunk)
        if (res.writableLength > MAX_BUFFERED_BYTES) {
          deps.metrics.streamClients.inc({ event: 'slow_consumer_closed' })
          req.log.warn({ code: 'CLOUD_STREAM_SLOW_CONSUMER', buffered: res.writableLength, user: user.name }, 'closing a live stream that does not keep up')
          res.destroy()
        }
      }

      // Replay and subscription happen in the same tick, so nothing recorded in between is lost.
      let replayed = 0
      let head = deps.feed.head()
      res.write(`retry: 2000\n: connected, head ${head}\n\n`)
      if (lastText !== undefined) {
        let after = Number(lastText)
        for (;;) {
          const batch = deps.feed.since(after, 1000)
          if (batch.length === 0) break
          send(batch)
          replayed += batch.length
          after = batch.at(-1)!.seq!
          if (replayed >= MAX_REPLAY) {
            // Too far behind to replay everything: say so, the console reloads its lists.
            res.write(`event: replay_truncated\ndata: {"after":${after}}\n\n`)
            break
          }
        }
        head = after
      }
      const unsubscribeFeed = deps.feed.subscribe((events) => send(events.filter((e) => e.seq === undefined || e.seq > head)))
      const unsubscribeBus = deps.bus.subscribe((envelopes) => send(live(envelopes, kinds, user)))
      const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS)
      open.add(res)
      res.on('close', () => {
        open.delete(res)
        clearInterval(heartbeat)
        unsubscribeFeed()
        unsubscribeBus()
      })
    },
  )
}

/** Raw envelopes as live-only events; alerts are left to the feed, which numbers them. */
function live(envelopes: readonly Envelope[], kinds: ReadonlySet<string>, user: UserPrincipal): FeedEvent[] {
  const out: FeedEvent[] = []
  for (const e of envelopes) {
    if (e.kind === 'alert' || !kinds.has(e.kind)) continue
    const subject = { office: e.office, enterprise: e.enterprise, kind: e.kind }
    if (canSee(user, subject)) out.push({ event: e.kind, subject, data: JSON.stringify(e) })
  }
  return out
}
