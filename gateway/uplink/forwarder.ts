/**
 * Uplink: drains the outbox to the cloud's `POST /v1/ingest`.
 *
 * Two lanes, one request in flight each:
 * - **urgent** carries alerts and SOS (priority class 0) the moment they are committed, never
 *   waiting behind a telemetry batch, and never rate-limited.
 * - **bulk** carries everything else in class order (events, aggregates, telemetry). It lingers up
 *   to `lingerMs` to fill a batch, and while a backlog replays it is paced to
 *   `maxEnvelopesPerSecond` so a returning center is not flooded.
 *
 * Each lane keeps its rows in sequence order with a single request in flight, so every device's
 * envelopes of one class arrive in order. A row is deleted only after the cloud answered `stored`
 * or `duplicate` for its id; anything else stays and goes again, and the cloud dedupes by id.
 *
 * Failures back off exponentially with decorrelated jitter and honour Retry-After (429, 503).
 * Both lanes share a circuit breaker: after `breakerFailures` failures in a row it opens, and one
 * probe goes after `breakerHalfOpenMs`. cockatiel provides the backoff generator and the breaker:
 * maintained, typed, and the jitter scheme AWS and Polly recommend. Requests go out on one
 * keep-alive connection per lane (post.ts).
 */
import type { Agent as HttpAgent } from 'node:http'
import { promisify } from 'node:util'
import { gzip as gzipCb } from 'node:zlib'
import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  ExponentialBackoff,
  circuitBreaker,
  handleType,
  type CircuitBreakerPolicy,
  type IBackoff,
} from 'cockatiel'
import type { IngestResponse } from '../../contracts/ingest.ts'
import type { Logger } from '../../common/logger.ts'
import type { GatewayMetrics } from '../metrics.ts'
import { Priority, type Outbox, type OutboxRow } from '../outbox/outbox.ts'
import { laneConnection, post, type Answer } from './post.ts'

const gzip = promisify(gzipCb)
const GZIP_ABOVE_BYTES = 2048

export interface ForwarderOptions {
  outbox: Outbox
  /** Base URL of cloud-api, e.g. http://127.0.0.1:8080 */
  url: string
  token: string | undefined
  batchMax: number
  lingerMs: number
  timeoutMs: number
  /** Pace of the bulk lane while it has a full batch waiting (a backlog). */
  maxEnvelopesPerSecond: number
  /** Cap on the retry delay: the first retry after the center recovers comes within this. */
  maxBackoffMs: number
  breakerFailures: number
  breakerHalfOpenMs: number
  metrics: GatewayMetrics
  logger: Logger
  /** Reported to the center with every batch (x-gridwatch-version), for its gateway health view. */
  version?: string
  /**
   * Most bytes of envelope JSON in one request (1 MiB by default), well under the center's body
   * limit (4 MiB decompressed by default): a batch is cut to it, and halved again on a 413.
   */
  maxBatchBytes?: number
}

export const DEFAULT_MAX_BATCH_BYTES = 1024 * 1024

export interface UplinkState {
  up: boolean
  circuit: 'closed' | 'open' | 'half-open'
  lastSuccessAt: number | null
  lastError: string | null
  consecutiveFailures: number
}

/**
 * A request that failed. `transient` ones (no answer, 5xx, 429) say the center is down or busy,
 * and only those count towards the breaker, which both lanes share: a 401, 403 or 413 is about
 * this gateway's config or this batch, and must not hold back the alerts of the other lane.
 */
class UplinkFailure extends Error {
  constructor(
    readonly outcome: string,
    message: string,
    readonly retryAfterMs?: number,
    readonly transient = true,
  ) {
    super(`${outcome}: ${message}`)
  }
}

type LaneName = 'urgent' | 'bulk'

class Lane {
  private backoff: IBackoff<unknown> | undefined
  private wakeUp: ((urgent: boolean) => void) | undefined
  /** Earliest time the next paced bulk request may go. */
  private nextSendAt = 0
  done: Promise<void> = Promise.resolve()

  constructor(
    readonly name: LaneName,
    private readonly minPriority: number,
    private readonly maxPriority: number,
    private readonly fwd: Forwarder,
  ) {}

  wake(urgent: boolean): void {
    this.wakeUp?.(urgent)
  }

  async run(): Promise<void> {
    const o = this.fwd.options
    let lingered = false
    while (this.fwd.running) {
      const rows = o.outbox.lease(o.batchMax, this.minPriority, this.maxPriority)
      if (rows.length === 0) {
        lingered = false
        await this.sleep(Infinity, false)
        continue
      }
      if (this.name === 'bulk' && !this.fwd.draining) {
        if (rows.length < o.batchMax && o.lingerMs > 0 && !lingered) {
          // Give telemetry a moment to fill the batch.
          o.outbox.release(rows.map((r) => r.seq))
          lingered = true
          await this.sleep(o.lingerMs, true)
          continue
        }
        const wait = this.nextSendAt - Date.now()
        if (wait > 0) await this.sleep(wait, false, true)
        this.nextSendAt = Math.max(Date.now(), this.nextSendAt) + (rows.length / o.maxEnvelopesPerSecond) * 1000
      }
      lingered = false
      const delay = await this.fwd.attempt(this.name, rows)
      if (delay === 0) {
        this.backoff = undefined
        continue
      }
      this.backoff = this.backoff ? this.backoff.next(undefined) : this.fwd.backoffFactory.next()
      const ms = Math.max(this.backoff.duration, delay)
      o.logger.warn(
        { code: 'GW_UPLINK_FAILED', lane: this.name, reason: this.fwd.state.lastError, retryInMs: Math.round(ms), failures: this.fwd.state.consecutiveFailures },
        'uplink failed; will retry',
      )
      // Sleep through the delay regardless of new data: hammering a failing center helps no one.
      await this.sleep(ms, false, true)
    }
  }

  /** Waits for `ms`, for a wake-up (any, or only urgent ones), or for stop(). */
  private sleep(ms: number, urgentOnly: boolean, ignoreWake = false): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(done, ms) : undefined
      this.wakeUp = (urgent) => {
        if (!this.fwd.running || (!ignoreWake && (urgent || !urgentOnly))) done()
      }
      function done() {
        if (timer) clearTimeout(timer)
        resolve()
      }
    }).finally(() => {
      this.wakeUp = undefined
    })
  }
}

export class Forwarder {
  readonly options: ForwarderOptions
  readonly backoffFactory: ExponentialBackoff<unknown>
  readonly state: UplinkState = { up: false, circuit: 'closed', lastSuccessAt: null, lastError: null, consecutiveFailures: 0 }
  running = false
  draining = false
  private readonly breaker: CircuitBreakerPolicy
  private readonly lanes: Lane[]
  private abort = new AbortController()
  private readonly ingestUrl: URL
  /** Per lane: bytes of envelope JSON a batch may carry now (halved by a 413, grown back by successes). */
  private readonly batchBytes: Record<LaneName, number>
  /** Per lane: half the smallest request the center refused as too large; never grown past. */
  private readonly batchCeiling: Record<LaneName, number>
  private readonly maxBatchBytes: number
  /** One keep-alive connection per lane, made at start and closed at stop. */
  private connections: Record<LaneName, HttpAgent> | undefined

  constructor(options: ForwarderOptions) {
    this.options = options
    this.ingestUrl = new URL('/v1/ingest', options.url)
    this.maxBatchBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES
    this.batchBytes = { urgent: this.maxBatchBytes, bulk: this.maxBatchBytes }
    this.batchCeiling = { urgent: this.maxBatchBytes, bulk: this.maxBatchBytes }
    this.backoffFactory = new ExponentialBackoff({ initialDelay: 200, maxDelay: options.maxBackoffMs })
    this.breaker = circuitBreaker(handleType(UplinkFailure, (f) => f.transient), {
      halfOpenAfter: options.breakerHalfOpenMs,
      breaker: new ConsecutiveBreaker(options.breakerFailures),
    })
    this.breaker.onStateChange((s) => {
      this.state.circuit = s === CircuitState.Open || s === CircuitState.Isolated ? 'open' : s === CircuitState.HalfOpen ? 'half-open' : 'closed'
      options.metrics.uplinkCircuit.set(s === CircuitState.Closed ? 0 : s === CircuitState.HalfOpen ? 2 : 1)
      options.logger.info({ circuit: this.state.circuit }, 'uplink circuit breaker changed state')
    })
    this.lanes = [new Lane('urgent', Priority.alert, Priority.alert, this), new Lane('bulk', Priority.event, Priority.telemetry, this)]
  }

  start(): void {
    if (this.running) return
    this.running = true
    this.abort = new AbortController()
    this.connections = { urgent: laneConnection(this.ingestUrl), bulk: laneConnection(this.ingestUrl) }
    for (const lane of this.lanes) {
      lane.done = lane.run().catch((err: unknown) => {
        this.options.logger.fatal({ err, code: 'GW_UPLINK_FAILED', lane: lane.name }, 'uplink lane crashed')
      })
    }
  }

  /** Called after each outbox commit. `urgent` when the commit held an alert. */
  wake(urgent: boolean): void {
    for (const lane of this.lanes) lane.wake(urgent)
  }

  /** Skip lingering and pacing: used while shutting down to empty the outbox quickly. */
  drainNow(): void {
    this.draining = true
    this.wake(true)
  }

  status(): Readonly<UplinkState> {
    return this.state
  }

  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    this.abort.abort()
    this.wake(true)
    await Promise.all(this.lanes.map((l) => l.done))
    const connections = this.connections
    this.connections = undefined
    if (connections) for (const c of Object.values(connections)) c.destroy()
  }

  /**
   * Sends one batch through the breaker. Returns 0 when the lane may go on at once, or the
   * minimum delay before the next attempt (Retry-After, or the breaker's half-open wait).
   */
  async attempt(lane: LaneName, leased: OutboxRow[]): Promise<number> {
    const { outbox, metrics } = this.options
    // Cut to the lane's byte budget (always at least one row); the rest goes in the next batch.
    const rows = fitBytes(leased, this.batchBytes[lane])
    if (rows.length < leased.length) outbox.release(leased.slice(rows.length).map((r) => r.seq))
    try {
      await this.breaker.execute(() => this.send(lane, rows))
      return 0
    } catch (err) {
      outbox.release(rows.map((r) => r.seq))
      if (err instanceof BrokenCircuitError) {
        metrics.uplinkRequests.inc({ lane, outcome: 'circuit_open' })
        return Math.min(this.options.breakerHalfOpenMs, this.options.maxBackoffMs)
      }
      const failure = err instanceof UplinkFailure ? err : new UplinkFailure('error', (err as Error).message)
      metrics.uplinkRequests.inc({ lane, outcome: failure.outcome })
      metrics.uplinkUp.set(0)
      this.state.up = false
      this.state.lastError = failure.message
      this.state.consecutiveFailures++
      // At least 1: 0 means "go on at once", which a Retry-After of 0 (or a date in the past)
      // must not turn a failure into.
      return Math.max(1, failure.retryAfterMs ?? 1)
    }
  }

  private async send(lane: LaneName, rows: OutboxRow[]): Promise<void> {
    const { outbox, metrics, logger } = this.options
    const started = performance.now()
    // The committed JSON goes out byte for byte: no re-serialisation, and a replay is identical.
    // A lone alert is not worth two thread-pool hops (gzip here, gunzip there); batches are.
    const json = Buffer.from(`{"envelopes":[${rows.map((r) => r.body).join(',')}]}`)
    const compress = json.length > GZIP_ABOVE_BYTES
    const body = compress ? await gzip(json) : json
    let res: Answer
    try {
      res = await post(
        this.ingestUrl,
        this.connections![lane],
        {
          'content-type': 'application/json',
          ...(compress ? { 'content-encoding': 'gzip' } : {}),
          ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
          // The center shows each gateway's backlog and version; both are cheap to report.
          'x-gridwatch-backlog': String(outbox.pendingCount()),
          ...(this.options.version ? { 'x-gridwatch-version': this.options.version } : {}),
        },
        body,
        AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.options.timeoutMs)]),
      )
    } catch (err) {
      throw new UplinkFailure('network', `${(err as Error).name}: ${(err as Error).message}`)
    } finally {
      metrics.uplinkSeconds.observe({ lane }, (performance.now() - started) / 1000)
    }

    if (res.status === 200) {
      const answer = JSON.parse(res.text) as IngestResponse
      const seqById = new Map(rows.map((r) => [r.id, r.seq]))
      const acked: number[] = []
      for (const r of answer.results) {
        const seq = seqById.get(r.id)
        if (seq === undefined) continue
        acked.push(seq)
        metrics.forwarded.inc({ status: r.status })
      }
      outbox.ack(acked)
      // Ids the answer left out stay in the outbox and go again.
      if (acked.length < rows.length) outbox.release(rows.map((r) => r.seq))
      metrics.uplinkRequests.inc({ lane, outcome: 'ok' })
      if (!this.state.up) logger.info({ lane, pending: outbox.pendingCount() }, 'uplink is up')
      Object.assign(this.state, { up: true, lastSuccessAt: Date.now(), lastError: null, consecutiveFailures: 0 })
      metrics.uplinkUp.set(1)
      this.batchBytes[lane] = Math.min(this.batchCeiling[lane], this.batchBytes[lane] * 2)
      return
    }

    const { status, text } = res
    if (status === 413) {
      metrics.uplinkRequests.inc({ lane, outcome: 'http_413' })
      if (rows.length > 1) {
        // Too large for the center's body limit: the lane's batches halve until they fit.
        // Halved, and never grown back past that: at most log2(maxBatchBytes / limit) refusals.
        this.batchBytes[lane] = Math.max(1, Math.floor(json.length / 2))
        this.batchCeiling[lane] = Math.min(this.batchCeiling[lane], this.batchBytes[lane])
        logger.warn({ code: 'GW_UPLINK_BATCH_TOO_LARGE', lane, bytes: json.length, nextBytes: this.batchBytes[lane] }, 'the center refused a batch as too large; sending smaller ones')
        outbox.release(rows.map((r) => r.seq))
        return
      }
      // One envelope the center will never take: set aside, so it does not hold up the rest.
      outbox.deadLetter(rows[0].seq, `refused as too large (${json.length} bytes): ${text.slice(0, 200)}`)
      logger.error({ code: 'GW_UPLINK_DEAD_LETTER', lane, seq: rows[0].seq, bytes: json.length }, 'an envelope too large for the center was set aside')
      return
    }
    if (status === 400 && this.deadLetterNamed(rows, text) > 0) {
      // The center is fine; the batch held poison. The rest goes again at once.
      outbox.release(rows.map((r) => r.seq))
      metrics.uplinkRequests.inc({ lane, outcome: 'http_400' })
      return
    }
    if (status === 429 || status === 503) {
      throw new UplinkFailure(`http_${status}`, text.slice(0, 200), retryAfterMs(res.headers['retry-after'] ?? null))
    }
    // 401/403: a token or office mismatch, an engineer must fix the config. Keep everything and
    // keep retrying slowly; data is never dropped for a configuration error. 5xx: the center.
    throw new UplinkFailure(`http_${status}`, text.slice(0, 200), undefined, status >= 500)
  }

  /** A 400 names the envelopes at fault (`/envelopes/3/...`); those move to the dead-letter table. */
  private deadLetterNamed(rows: OutboxRow[], text: string): number {
    let problems: { path: string; message: string }[] = []
    try {
      problems = (JSON.parse(text) as { problems?: typeof problems }).problems ?? []
    } catch {
      // not our error format: nothing can be attributed, so nothing is moved
    }
    const named = new Set<number>()
    for (const p of problems) {
      const m = /^\/envelopes\/(\d+)(\/|$)/.exec(p.path)
      if (m) named.add(Number(m[1]))
    }
    let moved = 0
    for (const index of named) {
      const row = rows[index]
      if (!row) continue
      const reason = problems
        .filter((p) => p.path === `/envelopes/${index}` || p.path.startsWith(`/envelopes/${index}/`))
        .map((p) => `${p.path}: ${p.message}`)
        .join('; ')
      this.options.outbox.deadLetter(row.seq, reason)
      this.options.metrics.forwarded.inc({ status: 'dead_letter' })
      this.options.logger.error({ code: 'GW_UPLINK_REFUSED', id: row.id, reason }, 'cloud refused an envelope; moved to dead letter')
      moved++
    }
    return moved
  }
}

/** Retry-After is either delta-seconds or an HTTP date (RFC 9110 §10.2.3). Capped at 5 minutes. */
export function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined
  const seconds = /^\d+$/.test(header.trim()) ? Number(header.trim()) * 1000 : Date.parse(header) - Date.now()
  if (!Number.isFinite(seconds)) return undefined
  return Math.min(Math.max(0, seconds), 300_000)
}

/** The longest prefix of `rows` whose bodies fit in `budget` bytes, and never less than one row. */
function fitBytes(rows: OutboxRow[], budget: number): OutboxRow[] {
  // The usual case, and the hot one: a batch of small envelopes far under the budget. A UTF-16
  // unit is at most three UTF-8 bytes, so summing lengths settles it without encoding anything.
  let units = 0
  for (const r of rows) units += r.body.length + 1
  if (units * 3 <= budget) return rows
  let bytes = 0
  for (let i = 0; i < rows.length; i++) {
    bytes += Buffer.byteLength(rows[i].body) + 1
    if (bytes > budget) return rows.slice(0, Math.max(1, i))
  }
  return rows
}
