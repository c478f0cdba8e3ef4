/**
 * One street-office gateway, assembled: inputs → pipeline (normalize → rules) → outbox → uplink.
 * Reading this file top to bottom is reading the path a message travels.
 */
import { join, resolve } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Logger } from '../common/logger.ts'
import type { GatewayConfig } from './config/schema.ts'
import { EmbeddedBrokerInput } from './inputs/mqtt/embedded-broker.ts'
import type { Input } from './inputs/input.ts'
import { createGatewayMetrics, withProcessMetrics, type GatewayMetrics } from './metrics.ts'
import { Normalizer } from './normalize/normalize.ts'
import { Outbox, Priority, priorityNames } from './outbox/outbox.ts'
import { Pipeline } from './pipeline.ts'
import { RuleEngine } from './rules/engine.ts'
import { Forwarder } from './uplink/forwarder.ts'

export const GATEWAY_VERSION = '0.1.0'

export interface GatewayOptions {
  logger: Logger
  /** Include Node process metrics (off in tests that run several gateways in one process). */
  processMetrics?: boolean
}

export class Gateway {
  readonly metrics: GatewayMetrics
  readonly outbox: Outbox
  readonly pipeline: Pipeline
  readonly forwarder: Forwarder
  readonly mqtt: EmbeddedBrokerInput
  private readonly inputs: Input[]
  private http: FastifyInstance | undefined
  private stopping = false

  private constructor(
    readonly config: GatewayConfig,
    private readonly log: Logger,
    processMetrics: boolean,
  ) {
    this.metrics = createGatewayMetrics(() => this.collectOutboxGauges())
    if (processMetrics) withProcessMetrics(this.metrics.registry, 'gateway_')

    this.outbox = new Outbox({
      path: join(resolve(config.gateway.dataDir), 'outbox.db'),
      gatewayId: config.gateway.id,
      logger: log.child({ component: 'outbox' }),
      onCommit: (envelopes, elapsedMs) => {
        this.metrics.commitSeconds.observe(elapsedMs / 1000)
        this.metrics.commitRows.observe(envelopes.length)
        let urgent = false
        for (const e of envelopes) {
          this.metrics.committed.inc({ kind: e.kind })
          if (e.kind === 'alert') urgent = true
        }
        this.forwarder.wake(urgent)
      },
    })
    const rules = RuleEngine.forOffice(config, (draft) => this.outbox.stamp(draft))
    rules.restore(this.outbox.loadState())
    this.pipeline = new Pipeline({
      normalizer: new Normalizer(config),
      rules,
      outbox: this.outbox,
      metrics: this.metrics,
      logger: log.child({ component: 'pipeline' }),
    })
    this.forwarder = new Forwarder({
      outbox: this.outbox,
      url: config.uplink.url,
      token: config.uplink.token,
      batchMax: config.uplink.batchMax,
      lingerMs: config.uplink.lingerMs,
      timeoutMs: config.uplink.timeoutMs,
      metrics: this.metrics,
      logger: log.child({ component: 'uplink' }),
    })
    this.mqtt = new EmbeddedBrokerInput(config, this.pipeline, log, this.metrics.registry)
    this.inputs = [this.mqtt]
  }

  static async start(config: GatewayConfig, options: GatewayOptions): Promise<Gateway> {
    const gw = new Gateway(config, options.logger, options.processMetrics ?? true)
    if (!config.uplink.token) {
      gw.log.warn({ code: 'GW_UPLINK_REFUSED' }, 'no uplink token configured (GRIDWATCH_UPLINK_TOKEN); the cloud will refuse ingest')
    }
    gw.forwarder.start()
    for (const input of gw.inputs) await input.start()
    if (config.http) gw.http = await gw.startHttp(config.http)
    const stats = gw.outbox.stats()
    gw.log.info(
      { mqttPort: gw.mqtt.port, httpPort: gw.httpPort, backlog: stats.pending, lastSeq: stats.lastSeq, devices: config.devices.length },
      'gateway started',
    )
    return gw
  }

  get httpPort(): number | undefined {
    const address = this.http?.server.address()
    return address && typeof address === 'object' ? address.port : undefined
  }

  /**
   * Stops taking data, gives the uplink up to `drainMs` to empty the outbox, then closes.
   * Whatever is still pending stays on disk and goes out after the next start.
   */
  async stop(drainMs = 0): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    for (const input of this.inputs) await input.stop()
    this.outbox.flush()
    if (drainMs > 0) await this.drain(drainMs)
    await this.forwarder.stop()
    await this.http?.close()
    const left = this.outbox.pendingCount()
    this.outbox.close()
    this.log.info({ keptForNextStart: left }, 'gateway stopped')
  }

  private async drain(ms: number): Promise<void> {
    const deadline = Date.now() + ms
    this.forwarder.wake(true)
    while (this.outbox.pendingCount() > 0 && Date.now() < deadline && this.forwarder.status().consecutiveFailures === 0) {
      await new Promise((r) => setTimeout(r, 20))
      this.forwarder.wake(true)
    }
  }

  private collectOutboxGauges(): void {
    const stats = this.outbox.stats()
    for (const name of priorityNames) this.metrics.pending.set({ class: name }, stats.pending[name])
    this.metrics.oldestPending.set(stats.oldestPendingMs === null ? 0 : stats.oldestPendingMs / 1000)
  }

  private async startHttp(listen: { host: string; port: number }): Promise<FastifyInstance> {
    const app = Fastify({ logger: false })
    app.get('/healthz', async () => {
      const stats = this.outbox.stats()
      return {
        status: 'ok',
        version: GATEWAY_VERSION,
        gateway: this.config.gateway.id,
        office: this.config.office.id,
        inputs: Object.fromEntries(this.inputs.map((i) => [i.name, i.health()])),
        uplink: this.forwarder.status(),
        outbox: { ...stats, urgentPending: stats.pending[priorityNames[Priority.alert]] },
      }
    })
    app.get('/readyz', async (_req, reply) => {
      const down = this.inputs.filter((i) => !i.health().ok).map((i) => i.name)
      if (this.stopping || down.length > 0) return reply.code(503).send({ ready: false, down, stopping: this.stopping })
      return { ready: true }
    })
    app.get('/metrics', async (_req, reply) => {
      reply.type(this.metrics.registry.contentType)
      return this.metrics.registry.metrics()
    })
    await app.listen({ host: listen.host, port: listen.port })
    return app
  }
}
