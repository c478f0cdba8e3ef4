/**
 * Liveness (/healthz: the process answers), readiness (/readyz: the store answers, so ingest can
 * succeed; a load balancer should stop sending here otherwise) and Prometheus metrics.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { AppDeps } from '../app.ts'

export const CLOUD_VERSION = '0.1.0'

export function healthRoutes(app: FastifyInstance, deps: AppDeps): void {
  const live = async () => ({ status: 'ok', version: CLOUD_VERSION, store: deps.store.kind })
  const ops = { schema: { tags: ['operation'], security: [] } }
  // Liveness and metrics answer even under pressure: a busy process is not a dead one, and
  // pressure is exactly when its metrics are wanted. (under-pressure lets a request through when
  // the route's handler returns nothing.) Readiness is shed, which tells a load balancer to back off.
  const exempt = { config: { pressureHandler: () => undefined } }
  app.get('/healthz', { ...ops, ...exempt, schema: { ...ops.schema, summary: 'Liveness: the process answers' } }, live)
  app.get('/health', { ...ops, ...exempt, schema: { ...ops.schema, summary: 'Liveness (alias of /healthz)' } }, live)

  const ready = async (_req: FastifyRequest, reply: FastifyReply) => {
    try {
      await deps.store.ping()
      return { ready: true, store: deps.store.kind }
    } catch (err) {
      // Anyone may ask, so the reason never carries credentials, even from a store that put a
      // URL's user and password into its message.
      const reason = (err as Error).message.replace(/\/\/[^/@\s]*@/g, '//')
      return reply.code(503).header('retry-after', '5').send({ ready: false, store: deps.store.kind, reason })
    }
  }
  app.get('/readyz', { ...ops, schema: { ...ops.schema, summary: 'Readiness: the event store answers' } }, ready)
  app.get('/ready', { ...ops, schema: { ...ops.schema, summary: 'Readiness (alias of /readyz)' } }, ready)

  app.get('/metrics', { ...ops, ...exempt, schema: { ...ops.schema, summary: 'Prometheus metrics' } }, async (_req, reply) => {
    reply.type(deps.metrics.registry.contentType)
    return deps.metrics.registry.metrics()
  })
}
