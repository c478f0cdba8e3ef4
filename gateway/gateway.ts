/**
 * One street-office gateway, assembled: inputs → pipeline (normalize → rules) → outbox → uplink.
 * Reading this file top to bottom is reading the path a message travels.
 */
import { join, resolve } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Logger } from '../common/logger.ts'
import { parseQueryTime } from '../common/time.ts'
import type { GatewayConfig } from './config/schema.ts'
import { EmbeddedBrokerInput } from './inputs/mqtt/embedded-broker.ts'
import { ExternalBrokerInput } from './inputs/mqtt/external-broker.ts'
import type { MqttInput } from './inputs/mqtt/mqtt-input.ts'
import type { Input } from './inputs/input.ts'
import { createFieldInputs } from './inputs/registry.ts'
import { createGatewayMetrics, withProcessMetrics, type GatewayMetrics } from './metrics.ts'
import { Normalizer } from './normalize/normalize.ts'
import { Evictor } from './outbox/eviction.ts'
import { Outbox, priorityNames } from './outbox/outbox.ts'
import { Pipeline } from './pipeline.ts'
import { RawStore } from './raw/raw-store.ts'
import { Reducer } from './reduce/reducer.ts'
import { RuleEngine } from './rules/engine.ts'
import { Forwarder } from './uplink/forwarder.ts'

export const GATEWAY_VERSION = '0.1.0'

const HOUR = 3_600_000
/** How often the quota and the TTLs are checked; also right after large commits. */
const HOUSEKEEPING_MS = 1000

export interface GatewayOptions {
  logger: Logger
  /** Include Node process metrics (off in tests that run several gateways in one process). */
  processMetrics?: boolean
}

export class Gateway {
  readonly metrics: GatewayMetrics
  readonly outbox: Outbox
  readonly evictor: Evictor
  readonly pipeline: Pipeline
  readonly forwarder: Forwarder
  readonly mqtt: MqttInput
  readonly raw: RawStore
  private readonly inputs: Input[]
  private http: FastifyInstance | undefined
  private housekeeping: NodeJS.Timeout | undefined
  private stopping = false

  private constructor(
    public config: GatewayConfig,
    private readonly log: Logger,
    processMetrics: boolean,
  ) {
    this.metrics = createGatewayMetrics(() => this.collectOutboxGauges())
    if (processMetrics) withProcessMetrics(this.metrics.registry, 'gateway_')

    this.outbox = new Outbox({
      path: join(resolve(config.gateway.dataDir), 'outbox.db'),
      gatewayId: config.gateway.id,
      officeId: config.office.id,
      logger: log.child({ component: 'outbox' }),
      maxBatchRows: config.outbox.maxBatchRows,
      onWalRestart: (elapsedMs) => this.metrics.walRestartSeconds.observe(elapsedMs / 1000),
      onCommit: (envelopes, elapsedMs) => {
        this.metrics.commitSeconds.observe(elapsedMs / 1000)
        this.metrics.commitRows.observe(envelopes.length)
        // Tally per kind first: one labelled inc() per kind per commit, not per envelope.
        const byKind = new Map<string, number>()
        for (const e of envelopes) byKind.set(e.kind, (byKind.get(e.kind) ?? 0) + 1)
        for (const [kind, n] of byKind) this.metrics.committed.inc({ kind }, n)
        this.forwarder.wake(byKind.has('alert'))
      },
    })
    const { quotaMb, ttlHours } = config.outbox
    this.evictor = new Evictor(
      this.outbox,
      {
        quotaBytes: quotaMb * 1024 * 1024,
        lowWater: 0.9,
        ttlMs: { event: ttlHours.event * HOUR, aggregate: ttlHours.aggregate * HOUR, telemetry: ttlHours.telemetry * HOUR },
      },
      config.office.id,
      log.child({ component: 'outbox' }),
      (e) => {
        this.metrics.evicted.inc({ class: e.class, reason: e.reason }, e.rows)
        this.forwarder.wake(false)
      },
    )
    this.raw = new RawStore(join(resolve(config.gateway.dataDir), 'raw.db'), config.reduction.rawRetentionDays)
    this.pipeline = new Pipeline({
      ...this.officeParts(config),
      raw: this.raw,
      outbox: this.outbox,
      metrics: this.metrics,
      logger: log.child({ component: 'pipeline' }),
    })
    this.forwarder = new Forwarder({
      outbox: this.outbox,
      ...config.uplink,
      token: config.uplink.token,
      version: GATEWAY_VERSION,
      metrics: this.metrics,
      logger: log.child({ component: 'uplink' }),
    })
    this.mqtt =
      config.broker.mode === 'external'
        ? new ExternalBrokerInput(config, this.pipeline, log, this.metrics.registry)
        : new EmbeddedBrokerInput(config, this.pipeline, log, this.metrics.registry)
    this.inputs = [this.mqtt]
  }

  /** Everything that depends on the office config, built from it; rule state comes from the outbox. */
  private officeParts(config: GatewayConfig) {
    const stamp = (draft: Parameters<Outbox['stamp']>[0]) => this.outbox.stamp(draft)
    const rules = RuleEngine.forOffice(config, stamp)
    rules.restore(this.outbox.loadState())
    return { normalizer: new Normalizer(config), rules, reducer: new Reducer(config.reduction, stamp) }
  }

  /**
   * Applies a changed office config (SIGHUP) without a restart: devices, checkpoints, routes,
   * thresholds and rules take effect at once; open alarms and tours continue from the outbox, and
   * nothing buffered is touched. Listener, uplink and outbox settings need a restart, and say so.
   */
  reload(next: GatewayConfig): void {
    const needsRestart: string[] = (['gateway', 'broker', 'http', 'uplink', 'outbox', 'inputs'] as const).filter((k) => JSON.stringify(next[k]) !== JSON.stringify(this.config[k]))
    // The office id is in every envelope and the center binds this gateway's token to one office:
    // a change waits for a restart, where the outbox checks what it still holds.
    if (next.office.id !== this.config.office.id) {
      needsRestart.push('office.id')
      next = { ...next, office: { ...next.office, id: this.config.office.id } }
    }
    // Commit what the old rules produced before the new ones read the state back.
    this.outbox.flush()
    const parts = this.officeParts(next)
    parts.reducer.takeOver(this.pipeline.reducer)
    this.pipeline.replace(parts)
    for (const input of this.inputs) input.replaceDevices?.(next.devices)
    this.config = next
    this.log.info({ devices: next.devices.length, routes: next.routes.length, needsRestart }, 'office config reloaded')
    if (needsRestart.length > 0) this.log.warn({ sections: needsRestart }, 'these config sections change only after a restart')
  }

  static async start(config: GatewayConfig, options: GatewayOptions): Promise<Gateway> {
    const gw = new Gateway(config, options.logger, options.processMetrics ?? true)
    if (!config.uplink.token) {
      gw.log.warn({ code: 'GW_UPLINK_REFUSED' }, 'no uplink token configured (GRIDWATCH_UPLINK_TOKEN); the cloud will refuse ingest')
    }
    gw.housekeep()
    gw.housekeeping = setInterval(() => gw.housekeep(), HOUSEKEEPING_MS)
    gw.forwarder.start()
    const ctx = { config, pipeline: gw.pipeline, logger: gw.log, metrics: gw.metrics, registry: gw.metrics.registry, dataDir: resolve(config.gateway.dataDir) }
    gw.inputs.push(...(await createFieldInputs(ctx)))
    for (const input of gw.inputs) await input.start()
    if (config.http) gw.http = await gw.startHttp(config.http)
    const stats = gw.outbox.stats()
    gw.log.info(
      { mqttPort: gw.mqtt.port, httpPort: gw.httpPort, backlog: stats.pending, lastSeq: stats.lastSeq, devices: config.devices.length },
      'gateway started',
    )
    return gw
  }

  /** A field input by name (`camera`, `serial:dock`, `modbus:rs485-1`, ...). */
  input(name: string): Input | undefined {
    return this.inputs.find((i) => i.name === name)
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
    clearInterval(this.housekeeping)
    for (const input of this.inputs) await input.stop()
    this.outbox.flush()
    if (drainMs > 0) await this.drain(drainMs)
    await this.forwarder.stop()
    await this.http?.close()
    const left = this.outbox.pendingCount()
    this.outbox.close()
    this.raw.close()
    this.log.info({ keptForNextStart: left }, 'gateway stopped')
  }

  /** Quota and TTL enforcement. Cheap when nothing is due: two pragmas and an indexed range scan. */
  housekeep(): void {
    try {
      this.pipeline.tick()
      this.evictor.enforceQuota()
      this.evictor.expire()
      this.evictor.releasePages()
      this.outbox.guardWal()
      this.outbox.pruneTransmissions()
    } catch (err) {
      this.log.error({ err, code: 'GW_OUTBOX_EVICTION_FAILED' }, 'outbox housekeeping failed')
    }
  }

  private async drain(ms: number): Promise<void> {
    const deadline = Date.now() + ms
    this.forwarder.drainNow()
    while (this.outbox.pendingCount() > 0 && Date.now() < deadline && this.forwarder.status().consecutiveFailures === 0) {
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  private collectOutboxGauges(): void {
    const stats = this.outbox.stats()
    for (const name of priorityNames) {
      this.metrics.pending.set({ class: name }, stats.pending[name])
      const age = stats.oldestPendingMs[name]
      this.metrics.oldestPending.set({ class: name }, age === null ? 0 : age / 1000)
    }
    this.metrics.sizeBytes.set({ kind: 'used' }, stats.usedBytes)
    this.metrics.sizeBytes.set({ kind: 'file' }, stats.fileBytes)
    this.metrics.callbackFailures.set(stats.callbackFailures)
  }

  private async startHttp(listen: { host: string; port: number }): Promise<FastifyInstance> {
    const app = Fastify({ logger: false })
    app.get('/healthz', async () => ({
      status: 'ok',
      version: GATEWAY_VERSION,
      gateway: this.config.gateway.id,
      office: this.config.office.id,
      inputs: Object.fromEntries(this.inputs.map((i) => [i.name, i.health()])),
      uplink: this.forwarder.status(),
      outbox: { ...this.outbox.stats(), quotaBytes: this.config.outbox.quotaMb * 1024 * 1024, deadLetters: this.outbox.deadLetterCount() },
      memoryMb: Object.fromEntries(Object.entries(process.memoryUsage()).map(([k, v]) => [k, Math.round(v / 1048576)])),
    }))
    // Ready means devices can reach the gateway through its MQTT input. A field input whose port or
    // server is away (an unplugged reader, a plant server restarting) degrades the gateway but does
    // not make it unready: everything else it collects still needs it running and reachable.
    app.get('/readyz', async (_req, reply) => {
      const degraded = this.inputs.filter((i) => i !== this.mqtt && !i.health().ok).map((i) => i.name)
      if (this.stopping || !this.mqtt.health().ok) {
        return reply.code(503).send({ ready: false, down: this.mqtt.health().ok ? [] : [this.mqtt.name], degraded, stopping: this.stopping })
      }
      return { ready: true, degraded }
    })
    // Raw readings kept on the gateway (report-by-exception sends the center fewer).
    app.get<{ Querystring: { device?: string; quantity?: string; from?: string; to?: string; limit?: string } }>('/v1/raw', async (req, reply) => {
      const { device, quantity } = req.query
      const to = req.query.to === undefined ? Date.now() : parseQueryTime(req.query.to)
      const from = req.query.from === undefined ? (to ?? Date.now()) - 3_600_000 : parseQueryTime(req.query.from)
      const limit = Math.min(Number(req.query.limit ?? 10_000), 100_000)
      if (!device || from === undefined || to === undefined || !(limit > 0)) {
        return reply.code(400).send({ code: 'GW_QUERY_INVALID', message: 'device is required; from/to are ISO 8601 or epoch ms; limit 1..100000' })
      }
      const points = this.raw.readings(device, from, to, quantity, limit)
      return { device, points: points.map((p) => ({ time: new Date(p.ts).toISOString(), quantity: p.quantity, value: p.value, unit: p.unit })) }
    })
    app.get('/metrics', async (_req, reply) => {
      reply.type(this.metrics.registry.contentType)
      return this.metrics.registry.metrics()
    })
    await app.listen({ host: listen.host, port: listen.port })
    return app
  }
}
