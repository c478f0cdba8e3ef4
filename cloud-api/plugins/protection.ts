/**
 * Keeping the API standing under load and abuse:
 *
 * - @fastify/under-pressure sheds requests with 503 + Retry-After while the event loop lags or
 *   the heap is too large, rather than letting every request time out together. Liveness
 *   (/healthz) is exempt, so an orchestrator does not kill a busy but healthy process.
 * - @fastify/rate-limit, keyed per gateway on ingest (after authentication, before the body is
 *   decompressed) and per address elsewhere; sign-in has its own tighter limit against password
 *   guessing. Well-kept and in-memory, which suits one API process per center.
 */
import type { FastifyInstance } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import underPressure from '@fastify/under-pressure'
import type { CloudConfig } from '../config.ts'
import { ApiError } from '../errors.ts'

export async function registerProtection(app: FastifyInstance, config: CloudConfig): Promise<void> {
  const { maxEventLoopDelayMs, maxHeapUsedMb, requestsPerAddressPerMinute } = config.limits
  if (maxEventLoopDelayMs > 0 || maxHeapUsedMb > 0) {
    await app.register(underPressure, {
      ...(maxEventLoopDelayMs > 0 ? { maxEventLoopDelay: maxEventLoopDelayMs } : {}),
      ...(maxHeapUsedMb > 0 ? { maxHeapUsedBytes: maxHeapUsedMb * 1024 * 1024 } : {}),
      retryAfter: 5,
      customError: class extends ApiError {
        constructor() {
          super('CLOUD_BUSY', 'the API is under pressure; retry later', undefined, 5)
        }
      },
    })
  }
  await app.register(rateLimit, {
    global: requestsPerAddressPerMinute > 0,
    max: requestsPerAddressPerMinute || 1,
    timeWindow: 60_000,
    // Streams stay open for hours and liveness must always answer; neither is worth limiting.
    allowList: (req) => req.routeOptions.url === '/v1/stream' || req.routeOptions.url === '/healthz' || req.routeOptions.url === '/health',
    errorResponseBuilder: (req, context) => {
      app.center.metrics.rateLimited.inc({ route: req.routeOptions.url ?? 'unmatched' })
      return new ApiError('CLOUD_RATE_LIMITED', `rate limit of ${context.max} requests per ${context.after} exceeded; retry later`, undefined, Math.max(1, Math.ceil(context.ttl / 1000)))
    },
  })
}

/** Route options for ingest: a per-gateway limit, checked after authentication and before the body is read. */
export function ingestRateLimit(config: CloudConfig) {
  const max = config.limits.ingestPerGatewayPerMinute
  if (max === 0) return { rateLimit: false as const }
  return {
    rateLimit: {
      max,
      timeWindow: 60_000,
      hook: 'preParsing' as const,
      keyGenerator: (req: { gatewayPrincipal?: { id: string }; ip: string }) => `gateway:${req.gatewayPrincipal?.id ?? req.ip}`,
    },
  }
}

/** Route options for sign-in: 10 attempts per address per minute. */
export const signInRateLimit = { rateLimit: { max: 10, timeWindow: 60_000 } }
