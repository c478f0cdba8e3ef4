/**
 * The cloud API as a Fastify instance, built from its dependencies so tests can `inject()` into
 * it with any store. main.ts adds the config file, the real store and the listening socket.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify'
import zlib from 'node:zlib'
import compress from '@fastify/compress'
import type { TSchema } from 'typebox'
import { checker, type SchemaProblem } from '../contracts/validate.ts'
import type { Logger } from '../common/logger.ts'
import type { CloudConfig } from './config.ts'
import { ApiError, CloudErrorStatus, type CloudErrorCode } from './errors.ts'
import { LiveBus } from './live/bus.ts'
import { createCloudMetrics, type CloudMetrics } from './metrics.ts'
import { createAuth, type Auth } from './plugins/auth.ts'
import { Organization } from './access/organization.ts'
import { Directory } from './access/directory.ts'
import { openCenterDb } from './center/db.ts'
import { Checkpointer } from '../common/checkpointer.ts'
import { FieldIndex } from './center/field.ts'
import { Feed } from './live/feed.ts'
import { Casebook } from './lifecycle/casebook.ts'
import { registerProtection } from './plugins/protection.ts'
import { registerDocs } from './plugins/docs.ts'
import { registerConsole } from './plugins/console.ts'
import { sessionRoutes } from './routes/session.ts'
import { caseRoutes } from './routes/cases.ts'
import { fieldRoutes } from './routes/field.ts'
import { patrolRoutes } from './routes/patrol.ts'
import { statsRoutes } from './routes/stats.ts'
import { adminRoutes } from './routes/admin.ts'
import { healthRoutes } from './routes/health.ts'
import { ingestRoutes } from './routes/ingest.ts'
import { queryRoutes } from './routes/queries.ts'
import { streamRoutes } from './routes/stream.ts'
import { StoreRejectedError, StoreUnavailableError, type EventStore } from './store/store.ts'

export interface AppDeps {
  config: CloudConfig
  store: EventStore
  auth: Auth
  bus: LiveBus
  metrics: CloudMetrics
  org: Organization
  directory: Directory
  feed: Feed
  casebook: Casebook
  field: FieldIndex
  log: Logger
  now: () => number
}

export interface BuildOptions {
  config: CloudConfig
  store: EventStore
  logger: Logger
  metrics?: CloudMetrics
  /** The clock for lifecycle and escalation (tests move it). */
  now?: () => number
}

/** Fastify's and its plugins' error codes, mapped into our catalogue. */
const frameworkErrors: Record<string, CloudErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'CLOUD_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'CLOUD_UNSUPPORTED_MEDIA_TYPE',
  FST_CP_ERR_INVALID_CONTENT_ENCODING: 'CLOUD_UNSUPPORTED_MEDIA_TYPE',
  FST_CP_ERR_INVALID_CONTENT: 'CLOUD_REQUEST_INVALID',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'CLOUD_REQUEST_INVALID',
  FST_ERR_CTP_INVALID_JSON_BODY: 'CLOUD_REQUEST_INVALID',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'CLOUD_REQUEST_INVALID',
  FST_UNDER_PRESSURE: 'CLOUD_BUSY',
}

class SchemaValidationError extends Error {
  readonly statusCode = 400
  constructor(readonly problems: SchemaProblem[]) {
    super(problems.map((p) => `${p.path || '/'} ${p.message}`).join('; '))
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** What was just stored, for the live stream and the demo's feed. */
    bus: LiveBus
    /** The center's parts, for the CLI, the demo and tests. */
    center: AppDeps
  }
}

export async function buildApp(options: BuildOptions): Promise<FastifyInstance> {
  const { config, store, logger } = options
  const metrics = options.metrics ?? createCloudMetrics()
  const now = options.now ?? Date.now
  const org = new Organization(config.organization)
  const db = openCenterDb(config.center.path)
  // As for the event store: the casebook's WAL checkpoints run on their own thread. Automatic
  // ones ran inside whichever casebook write crossed 4 MB, on the event loop, every ~6 s under
  // bench:alert-latency's load, and an alert arriving then waited for the copy and its fsync.
  const checkpointer = config.center.path === ':memory:' ? undefined : new Checkpointer(config.center.path, 500, undefined, { db })
  const directory = new Directory(db, config, org, now)
  const feed = new Feed(db, now)
  const casebook = new Casebook(db, store, feed, {
    ackMinutes: config.escalation.ackMinutes,
    departments: config.departments.map((d) => d.id),
    log: logger,
    now,
  })
  const field = new FieldIndex(db)
  const deps: AppDeps = {
    config,
    store,
    auth: createAuth(directory, { openReads: config.reads.open }),
    bus: new LiveBus(),
    metrics,
    org,
    directory,
    feed,
    casebook,
    field,
    log: logger,
    now,
  }
  metrics.trackCenter(() => ({ auditPending: casebook.pendingAudit() }))

  // Typed as Fastify's logger so the instance type is the default FastifyInstance the routes take.
  const loggerInstance: FastifyBaseLogger = logger
  const app = Fastify({
    loggerInstance,
    // Per-request info lines at thousands of ingests a second would drown the log; failures are
    // logged in onResponse below (with the request id), and everything is counted in metrics.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimitBytes,
    // The SSE stream and sign-in carry tokens in headers only; never in logs (see common/logger.ts redaction).
    trustProxy: false,
  })

  // One validator for both ends: the same TypeBox checker the gateway uses, so a 400 names the
  // same paths the gateway would have.
  app.setValidatorCompiler(({ schema }) => {
    const check = checker(schema as TSchema)
    return (data: unknown) => (check.check(data) ? { value: data } : { error: new SchemaValidationError(check.problems(data, '', 20)) })
  })

  // The API speaks JSON only; Fastify's built-in text/plain parser would turn a stray text body
  // into a confusing schema error instead of a clear 415.
  app.removeContentTypeParser('text/plain')

  // Gateways gzip their batches; the body limit applies to the decompressed stream, so a small
  // compressed bomb is still refused with 413.
  await app.register(compress, {
    global: true,
    encodings: ['gzip'],
    requestEncodings: ['gzip', 'deflate'],
    // Answers: level 1 packs an ingest answer (2,000 near-identical results) as small as the
    // default level 6 does, for a third of the CPU.
    zlibOptions: { level: 1 },
    // Requests: inflate in 256 kB chunks rather than zlib's 16 kB, or a 2,000-envelope batch
    // (~500 kB of JSON) takes ~30 thread-pool round trips and stream events; this halves the
    // CPU of decompressing it.
    zlib: {
      createGunzip: () => zlib.createGunzip({ chunkSize: 256 * 1024 }),
      createInflate: () => zlib.createInflate({ chunkSize: 256 * 1024 }),
    },
  })
  await registerProtection(app, config)
  await registerDocs(app)
  await registerConsole(app, logger)

  app.setErrorHandler((err: FastifyError & { problems?: SchemaProblem[]; retryAfter?: number }, req, reply) => {
    let code: CloudErrorCode
    let message = err.message
    let problems = err.problems
    let retryAfter = err.retryAfter
    if (err instanceof ApiError) {
      code = err.code as CloudErrorCode
      retryAfter ??= err.retryAfter
    } else if (err instanceof StoreRejectedError && err.problems.length > 0) {
      // InfluxDB refused the points of these envelopes for good (a line it cannot parse, or older
      // than its retention keeps); every other point of the batch was written. A 400 naming them
      // lets the gateway dead-letter exactly those and send the rest again (a harmless rewrite).
      code = 'CLOUD_STORE_REJECTED'
      problems = err.problems
      req.log.error({ code, reason: err.reason, err: err.message, envelopes: err.problems.length }, 'event store refused envelopes')
    } else if (err instanceof StoreRejectedError) {
      // Refused, but no envelope named (a database limit): the store is up, and the batch is kept
      // and retried like an outage, under its own code so that it is not taken for one.
      code = 'CLOUD_STORE_REFUSED'
      retryAfter = 30
      req.log.error({ code, reason: err.reason, err: err.message }, 'event store refused points of a batch; an administrator must look')
    } else if (err instanceof StoreUnavailableError) {
      code = 'CLOUD_STORE_UNAVAILABLE'
      retryAfter = 5
      req.log.error({ code, err: err.message }, 'event store unavailable')
    } else if (err.validation || err instanceof SchemaValidationError || err.cause instanceof SchemaValidationError) {
      code = req.routeOptions.url === '/v1/ingest' ? 'CLOUD_INGEST_INVALID' : 'CLOUD_REQUEST_INVALID'
      const source = err instanceof SchemaValidationError ? err : (err.cause as SchemaValidationError | undefined)
      problems = source?.problems ?? problems
      message = `invalid ${err.validationContext ?? 'request'}${code === 'CLOUD_INGEST_INVALID' ? '; nothing was stored' : ''}`
    } else if (err.code && frameworkErrors[err.code]) {
      code = frameworkErrors[err.code]!
    } else if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      code = 'CLOUD_REQUEST_INVALID'
    } else {
      code = 'CLOUD_INTERNAL'
      message = 'internal error'
      req.log.error({ err, code }, 'unhandled error')
    }
    if (code === 'CLOUD_BUSY') {
      retryAfter ??= 5
      metrics.shed.inc({ route: req.routeOptions.url ?? 'unmatched' })
    }
    // Every refusal is counted here, where they all pass: schema failures never reach a route.
    if (req.routeOptions.url === '/v1/ingest') metrics.ingestRejected.inc({ code })
    const statusCode = CloudErrorStatus[code]
    if (statusCode === 401 || statusCode === 403) metrics.authFailures.inc({ route: req.routeOptions.url ?? 'unmatched', status: statusCode })
    if (code === 'CLOUD_UNAUTHENTICATED') reply.header('www-authenticate', 'Bearer')
    if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter))
    return reply.code(statusCode).send({
      statusCode,
      code,
      error: httpReason(statusCode),
      message,
      ...(problems && problems.length > 0 ? { problems } : {}),
    })
  })

  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ statusCode: 404, code: 'CLOUD_NOT_FOUND', error: 'Not Found', message: `no route ${req.method} ${req.url.split('?')[0]}` }),
  )

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched'
    metrics.httpRequests.inc({ route, status: reply.statusCode })
    metrics.httpSeconds.observe({ route }, reply.elapsedTime / 1000)
    if (reply.statusCode >= 400) {
      req.log.warn(
        { route, method: req.method, status: reply.statusCode, gateway: req.gatewayPrincipal?.id, user: req.user?.name, ms: Math.round(reply.elapsedTime) },
        'request failed',
      )
    }
  })

  healthRoutes(app, deps)
  ingestRoutes(app, deps)
  sessionRoutes(app, deps)
  caseRoutes(app, deps, 'alert')
  caseRoutes(app, deps, 'incident')
  queryRoutes(app, deps)
  fieldRoutes(app, deps)
  patrolRoutes(app, deps)
  statsRoutes(app, deps)
  adminRoutes(app, deps)
  streamRoutes(app, deps)

  // Escalation by SLA, and the audit trail's copy into the event store while it was down.
  const escalation = setInterval(() => {
    try {
      casebook.escalateDue()
    } catch (err) {
      logger.error({ code: 'CLOUD_ESCALATION_FAILED', err: (err as Error).message }, 'escalation check failed')
    }
  }, config.escalation.checkSeconds * 1000)
  const audit = setInterval(() => void casebook.flushAudit(), 10_000)
  escalation.unref()
  audit.unref()
  app.addHook('onClose', async () => {
    clearInterval(escalation)
    clearInterval(audit)
    field.close()
    await casebook.flushAudit().catch(() => 0)
    await checkpointer?.close()
    db.close()
  })

  app.decorate('bus', deps.bus)
  app.decorate('center', deps)
  return app
}

function httpReason(status: number): string {
  return (
    {
      400: 'Bad Request',
      401: 'Unauthorized',
      403: 'Forbidden',
      404: 'Not Found',
      409: 'Conflict',
      413: 'Payload Too Large',
      415: 'Unsupported Media Type',
      429: 'Too Many Requests',
      500: 'Internal Server Error',
      503: 'Service Unavailable',
    }[status] ?? 'Error'
  )
}
