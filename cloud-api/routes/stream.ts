/**
 * GET /v1/stream: Server-Sent Events of what the center has just stored.
 *
 *   GET /v1/stream?kinds=alert,scan     (default: alert)
 *
 * Each event: `id: <envelope id>`, `event: <kind>`, `data: <envelope JSON>`. A client that reads
 * too slowly to keep its buffer under 1 MiB is disconnected rather than allowed to grow memory.
 * Replay from Last-Event-ID arrives with the cloud API issue.
 */
import type { ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { EnvelopeKinds } from '../../contracts/envelope.ts'
import { ApiError } from '../errors.ts'
import type { AppDeps } from '../app.ts'

const MAX_BUFFERED_BYTES = 1024 * 1024
const HEARTBEAT_MS = 15_000

const StreamQuery = Type.Object(
  { kinds: Type.Optional(Type.String({ maxLength: 100 })) },
  { additionalProperties: false },
)

export function streamRoutes(app: FastifyInstance, deps: AppDeps): void {
  const open = new Set<ServerResponse>()
  // A live stream never ends on its own; without this, close() would wait for every console.
  app.addHook('preClose', async () => {
    for (const res of open) res.end()
  })
  app.withTypeProvider<TypeBoxTypeProvider>().get(
    '/v1/stream',
    { onRequest: deps.auth.requireReader, schema: { querystring: StreamQuery } },
    (req, reply) => {
      const kinds = new Set<string>((req.query.kinds ?? 'alert').split(',').map((k) => k.trim()))
      for (const k of kinds) {
        if (!(EnvelopeKinds as readonly string[]).includes(k)) {
          throw new ApiError('CLOUD_REQUEST_INVALID', 'unknown kind', [{ path: '/kinds', message: `"${k}" is not one of ${EnvelopeKinds.join(', ')}` }])
        }
      }
      reply.hijack()
      const res = reply.raw
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      })
      res.write('retry: 2000\n: connected\n\n')
      deps.metrics.streamClients.inc({ event: 'opened' })

      const unsubscribe = deps.bus.subscribe((envelopes) => {
        let chunk = ''
        for (const e of envelopes) {
          if (kinds.has(e.kind)) chunk += `id: ${e.id}\nevent: ${e.kind}\ndata: ${JSON.stringify(e)}\n\n`
        }
        if (chunk === '') return
        res.write(chunk)
        if (res.writableLength > MAX_BUFFERED_BYTES) {
          deps.metrics.streamClients.inc({ event: 'slow_consumer_closed' })
          req.log.warn({ code: 'CLOUD_STREAM_SLOW_CONSUMER', buffered: res.writableLength }, 'closing a live stream that does not keep up')
          res.destroy()
        }
      })
      const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS)
      open.add(res)
      res.on('close', () => {
        open.delete(res)
        clearInterval(heartbeat)
        unsubscribe()
      })
    },
  )
}
