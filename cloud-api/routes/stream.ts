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
 * The first three carry `id:` (opaque: `<center database epoch>-<token>`, live/event-ids.ts) and are replayed
 * after a reconnect from `Last-Event-ID` (or `?lastEventId=`), up to 7 days or 200,000 events
 * back, at most 10,000 per reconnect, at the pace the console reads; `replay_truncated` says when
 * that was not all.
 * Raw data is live only. A live client that lets 1 MiB pile up unread is disconnected rather
 * than allowed to grow memory; it reconnects and replays. EventSource cannot send headers, so this
 * route alone also takes the token as `?access_token=` (RFC 6750 §2.3).
 */
import type { ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { EnvelopeKinds, type Envelope } from '../../contracts/envelope.ts'
import { canSee, officeFilter, Roles, type UserPrincipal } from '../access/principal.ts'
import type { EventIds } from '../live/event-ids.ts'
import type { FeedEvent } from '../live/feed.ts'
import { ApiError } from '../errors.ts'
import { bearer } from '../plugins/auth.ts'
import type { AppDeps } from '../app.ts'

const MAX_BUFFERED_BYTES = 1024 * 1024
const HEARTBEAT_MS = 15_000
const MAX_REPLAY = 10_000
const CASE_EVENTS = ['alert_update', 'incident_update'] as const
const EVENTS: readonly string[] = [...CASE_EVENTS, ...EnvelopeKinds]

const StreamQuery = Type.Object(
  {
    kinds: Type.Optional(Type.String({ maxLength: 200 })),
    lastEventId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    access_token: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
)

function frame(e: FeedEvent, ids: EventIds): string {
  return `${e.seq !== undefined ? `id: ${ids.format(e.seq)}\n` : ''}event: ${e.event}\ndata: ${e.data}\n\n`
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
      const ids = deps.feed.ids
      // The header (what EventSource sends) if it holds an id of ours, else the query (what the
      // console puts in the URL), else whichever was given, to be answered unknown_id.
      const lastHeader = typeof req.headers['last-event-id'] === 'string' && req.headers['last-event-id'].trim() !== '' ? req.headers['last-event-id'].trim() : undefined
      const lastText = [lastHeader, req.query.lastEventId].find((t) => t !== undefined && typeof ids.parse(t) === 'object') ?? lastHeader ?? req.query.lastEventId
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
      // Fastify's own error listener goes with 'finish'; a write racing the end must not take the
      // process down with it.
      res.on('error', (err) => req.log.debug({ code: 'CLOUD_STREAM_ERROR', err: err.message }, 'live stream write failed'))

      let closed = false
      const slow = () => {
        deps.metrics.streamClients.inc({ event: 'slow_consumer_closed' })
        req.log.warn({ code: 'CLOUD_STREAM_SLOW_CONSUMER', buffered: res.writableLength, user: user.name }, 'closing a live stream that does not keep up')
        res.destroy()
      }
      // The caller is checked again while the stream is open, not only when it opens: a sign-out,
      // a revoked token, a removed or disabled user or an expired session ends it, and so does
      // a changed role or scope (the console reconnects and is filtered anew). Before anything is
      // sent (a token hash and one indexed lookup) and on every heartbeat.
      const token = bearer(req)
      let ended = false
      const stillAllowed = (): boolean => {
        if (ended || closed) return false
        if (token === undefined) return true
        const p = deps.directory.authenticate(token)
        if (p?.kind === 'user' && samePrincipal(p, user)) return true
        // Ended once: the 'close' that sets `closed` comes a few ticks later, and a second end()
        // in between would throw outside any handler.
        ended = true
        deps.metrics.streamClients.inc({ event: 'signed_out_closed' })
        req.log.info({ code: 'CLOUD_STREAM_SIGNED_OUT', user: user.name }, 'live stream closed: its token no longer signs in as the same user')
        res.end(`event: signed_out\ndata: {"reason":"the token no longer signs in as ${user.name} with the same scope; sign in again"}\n\n`)
        return false
      }
      const send = (events: readonly FeedEvent[]) => {
        if (ended) return
        let chunk = ''
        for (const e of events) if (wanted(e)) chunk += frame(e, ids)
        if (chunk === '' || !stillAllowed()) return
        res.write(chunk)
        if (res.writableLength > MAX_BUFFERED_BYTES) slow()
      }

      // Live events are queued while a replay runs and sent after it, skipping what the replay
      // already sent; `head` is the last replayable sequence this console has been sent.
      let head = deps.feed.head()
      let queue: FeedEvent[] | undefined = lastText !== undefined ? [] : undefined
      const deliver = (events: readonly FeedEvent[]) => {
        if (queue) {
          queue.push(...events)
          // A console that cannot even take its replay while events keep coming is not kept up.
          if (queue.length > MAX_REPLAY) slow()
        } else send(events.filter((e) => e.seq === undefined || e.seq > head))
      }
      const unsubscribeFeed = deps.feed.subscribe(deliver)
      const unsubscribeBus = deps.bus.subscribe((envelopes) => deliver(live(envelopes, kinds, user)))
      const heartbeat = setInterval(() => {
        if (stillAllowed()) res.write(': ping\n\n')
      }, HEARTBEAT_MS)
      open.add(res)
      res.on('close', () => {
        closed = true
        open.delete(res)
        clearInterval(heartbeat)
        unsubscribeFeed()
        unsubscribeBus()
      })
      // (Not the feed's head: that counts every office's events, and says how busy others are.)
      res.write(`retry: 2000\n: connected\n\n`)
      if (lastText === undefined) return

      // `after`: the id of the last event this console was sent, when there is one (never a count).
      // `from`: where a reconnect should start, given as the notice's own id, so that the browser
      // (and the console) move past what the reload covers instead of sending the same dead or
      // stale id, and wiping their lists, at every reconnect.
      const truncated = (reason: string, after: number | undefined, from?: number) =>
        !ended &&
        res.write(`${from !== undefined ? `id: ${ids.format(from)}\n` : ''}event: replay_truncated\ndata: {${after !== undefined ? `"after":"${ids.format(after)}",` : ''}"reason":"${reason}"}\n\n`)
      const offices = officeFilter(user)
      void (async () => {
        const parsed = ids.parse(lastText)
        let after = typeof parsed === 'object' ? parsed.seq : head
        // The last id this console was sent; what replay_truncated says (never the feed's head).
        let lastSent = after
        if (typeof parsed !== 'object') {
          // Not an id of this center database (another one, made anew; forged; or of the old
          // numeric kind): nothing can be replayed; the console reloads its lists and goes on live.
          truncated('unknown_id', undefined, head)
        } else if (after > head) {
          // Ahead of the feed: cannot come from this database's own ids short of its feed being
          // cut back; nothing to replay, said no differently from being up to date.
          after = head
        } else {
          const oldest = deps.feed.oldest()
          // Older than the feed keeps: say so, then replay what is left.
          // The notice's id moves the console past what was pruned: if nothing of its scope is
          // left to replay, its next reconnect would otherwise be told the same again.
          if (oldest !== undefined && oldest > after + 1) {
            truncated('pruned', after, oldest - 1)
            after = oldest - 1
          }
        }
        let replayed = 0
        while (!closed && !ended) {
          const batch = deps.feed.since(after, 500, offices)
          if (batch.length === 0) break
          after = batch.at(-1)!.seq!
          let chunk = ''
          for (const e of batch) {
            if (!wanted(e)) continue
            chunk += frame(e, ids)
            lastSent = e.seq!
            // Only what this console may see counts: counting every event scanned would say,
            // by when the notice comes, how many events other offices had (the scan itself is
            // bounded by what the feed keeps).
            replayed++
          }
          // Replay at the pace the console reads, however far behind it is; only live events
          // count against the slow-consumer limit.
          if (chunk !== '' && stillAllowed() && !res.write(chunk)) await new Promise((resolve) => (res.once('drain', resolve), res.once('close', resolve)))
          if (replayed >= MAX_REPLAY) {
            // The console reloads its lists: a reconnect starts from now, and so do live events.
            after = deps.feed.head()
            truncated('too_far_behind', lastSent, after)
            break
          }
        }
        head = Math.max(head, after)
        const waiting = queue ?? []
        queue = undefined
        if (!closed) send(waiting.filter((e) => e.seq === undefined || e.seq > head))
      })().catch((err: unknown) => {
        req.log.error({ code: 'CLOUD_STREAM_REPLAY_FAILED', err: (err as Error).message }, 'stream replay failed')
        res.destroy()
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

/** The same user with the same role and scope (offices and enterprises are Sets). */
function samePrincipal(a: UserPrincipal, b: UserPrincipal): boolean {
  const sameSet = (x: ReadonlySet<string> | 'all' | undefined, y: ReadonlySet<string> | 'all' | undefined) =>
    x === y || (typeof x === 'object' && typeof y === 'object' && x.size === y.size && [...x].every((v) => y.has(v)))
  return a.name === b.name && a.role === b.role && sameSet(a.offices, b.offices) && sameSet(a.enterprises, b.enterprises)
}
