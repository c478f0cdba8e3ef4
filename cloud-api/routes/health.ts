/**
 * Liveness (/healthz: the process answers), readiness (/readyz: the store answers, so ingest can
 * succeed; a load balancer should stop sending here otherwise) and Prometheus metrics.
 */
import type { FastifyInstance } from 'fastify'
import type { AppDeps } from '../app.ts'

export const CLOUD_VERSION = '0.1.0'

export function healthRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.get('/healthz', async () => ({ status: 'ok', version: CLOUD_VERSION, store: deps.store.kind }))

  app.get('/readyz', async (_req, reply) => {
    try {
      await deps.store.ping()
      return { ready: true, store: deps.store.kind }
    } catch (err) {
      return reply.code(503).header('retry-after', '5').send({ ready: false, store: deps.store.kind, reason: (err as Error).message })
    }
  })

  app.get('/metrics', async (_req, reply) => {
    reply.type(deps.metrics.registry.contentType)
    return deps.metrics.registry.metrics()
  })
}
