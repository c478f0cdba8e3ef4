/**
 * Uplink: drains the outbox to the cloud's `POST /v1/ingest`.
 *
 * - Alerts never wait: a commit that holds an alert wakes the forwarder at once. Telemetry waits
 *   up to `lingerMs` to fill a batch, so the center gets few large requests instead of many small.
 * - A row is deleted only after the cloud has answered `stored` or `duplicate` for its id. Ids the
 *   answer leaves out stay and go again; the cloud dedupes by id, so a replay is harmless.
 * - Failures back off exponentially with decorrelated jitter (cockatiel's generator: maintained,
 *   typed, and the jitter scheme AWS and Polly recommend), honouring Retry-After on 429 and 503.
 * - One request is in flight at a time, which keeps each device's envelopes in sequence order.
 */
import { promisify } from 'node:util'
import { gzip as gzipCb } from 'node:zlib'
import { ExponentialBackoff, type IBackoff } from 'cockatiel'
import type { IngestResponse } from '../../contracts/ingest.ts'
import type { Logger } from '../../common/logger.ts'
import type { GatewayMetrics } from '../metrics.ts'
import { Priority, type Outbox, type OutboxRow } from '../outbox/outbox.ts'

const gzip = promisify(gzipCb)

export interface ForwarderOptions {
  outbox: Outbox
  /** Base URL of cloud-api, e.g. http://127.0.0.1:8080 */
  url: string
  token: string | undefined
  batchMax: number
  lingerMs: number
  timeoutMs: number
  /** Cap on the retry delay; issue 6 asks for the first retry within 5 s of the cloud's recovery. */
  maxBackoffMs?: number
  metrics: GatewayMetrics
  logger: Logger
}

export interface UplinkState {
  up: boolean
  lastSuccessAt: number | null
  lastError: string | null
  consecutiveFailures: number
}

type SendResult = { kind: 'ok' } | { kind: 'retry'; reason: string; retryAfterMs?: number }

export class Forwarder {
  private readonly opts: ForwarderOptions
  private readonly backoffFactory: ExponentialBackoff<unknown>
  private backoff: IBackoff<unknown> | undefined
  private running = false
  private loopDone: Promise<void> = Promise.resolve()
  private wakeUp: ((urgent: boolean) => void) | undefined
  private urgentPending = false
  private abort = new AbortController()
  private readonly state: UplinkState = { up: false, lastSuccessAt: null, lastError: null, consecutiveFailures: 0 }

  constructor(options: ForwarderOptions) {
    this.opts = options
    this.backoffFactory = new ExponentialBackoff({ initialDelay: 250, maxDelay: options.maxBackoffMs ?? 5000 })
  }

  start(): void {
    if (this.running) return
    this.running = true
    this.abort = new AbortController()
    this.loopDone = this.loop().catch((err: unknown) => {
      this.opts.logger.fatal({ err, code: 'GW_UPLINK_FAILED' }, 'forwarder loop crashed')
    })
  }

  /** Called after each outbox commit. `urgent` when the commit held an alert. */
  wake(urgent: boolean): void {
    if (urgent) this.urgentPending = true
    this.wakeUp?.(urgent)
  }

  status(): Readonly<UplinkState> {
    return this.state
  }

  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    this.abort.abort()
    this.wakeUp?.(true)
    await this.loopDone
  }

  private async loop(): Promise<void> {
    const { outbox, batchMax, lingerMs } = this.opts
    while (this.running) {
      let rows = outbox.peek(batchMax)
      if (rows.length === 0) {
        await this.sleep(Infinity, false)
        continue
      }
      if (rows.length < batchMax && rows[0].priority !== Priority.alert && lingerMs > 0 && !this.urgentPending) {
        // Give telemetry a moment to fill the batch; an alert arriving meanwhile ends the wait.
        await this.sleep(lingerMs, true)
        if (!this.running) break
        rows = outbox.peek(batchMax)
      }
      this.urgentPending = false
      const result = await this.send(rows)
      if (result.kind === 'ok') {
        this.backoff = undefined
        continue
      }
      this.backoff = this.backoff ? this.backoff.next(undefined) : this.backoffFactory.next()
      const delay = Math.max(this.backoff.duration, result.retryAfterMs ?? 0)
      this.opts.logger.warn(
        { code: 'GW_UPLINK_FAILED', reason: result.reason, retryInMs: Math.round(delay), failures: this.state.consecutiveFailures, pending: rows.length },
        'uplink failed; will retry',
      )
      // Sleep through the delay regardless of new data: hammering a failing cloud helps no one.
      await this.sleep(delay, false, true)
    }
  }

  /** Waits for `ms`, for a wake-up (any, or only urgent ones), or for stop(). */
  private sleep(ms: number, urgentOnly: boolean, ignoreWake = false): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(done, ms) : undefined
      this.wakeUp = (urgent) => {
        if (!this.running || (!ignoreWake && (urgent || !urgentOnly))) done()
      }
      function done() {
        if (timer) clearTimeout(timer)
        resolve()
      }
    }).finally(() => {
      this.wakeUp = undefined
    })
  }

  private async send(rows: OutboxRow[]): Promise<SendResult> {
    const { outbox, metrics, logger } = this.opts
    const started = performance.now()
    // The committed JSON goes out byte for byte: no re-serialisation, and a replay is identical.
    const body = await gzip(Buffer.from(`{"envelopes":[${rows.map((r) => r.body).join(',')}]}`))
    let res: Response
    try {
      res = await fetch(new URL('/v1/ingest', this.opts.url), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-encoding': 'gzip',
          ...(this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {}),
        },
        body,
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.opts.timeoutMs)]),
      })
    } catch (err) {
      return this.failed('network', `${(err as Error).name}: ${(err as Error).message}`)
    } finally {
      metrics.uplinkSeconds.observe((performance.now() - started) / 1000)
    }

    if (res.status === 200) {
      const answer = (await res.json()) as IngestResponse
      const seqById = new Map(rows.map((r) => [r.id, r.seq]))
      const acked: number[] = []
      for (const r of answer.results) {
        const seq = seqById.get(r.id)
        if (seq === undefined) continue
        acked.push(seq)
        metrics.forwarded.inc({ status: r.status })
      }
      outbox.ack(acked)
      metrics.uplinkRequests.inc({ outcome: 'ok' })
      if (!this.state.up) logger.info({ pending: outbox.pendingCount() }, 'uplink is up')
      Object.assign(this.state, { up: true, lastSuccessAt: Date.now(), lastError: null, consecutiveFailures: 0 })
      metrics.uplinkUp.set(1)
      if (acked.length < rows.length) {
        return this.failed('partial', `cloud answered for ${acked.length} of ${rows.length} envelopes`)
      }
      return { kind: 'ok' }
    }

    const text = await res.text().catch(() => '')
    if (res.status === 429 || res.status === 503) {
      return this.failed(`http_${res.status}`, text.slice(0, 200), retryAfterMs(res.headers.get('retry-after')))
    }
    if (res.status === 400) this.deadLetterNamed(rows, text)
    // 401/403: a token or office mismatch, an engineer must fix the config. Keep everything and
    // keep retrying slowly; data is never dropped for a configuration error.
    return this.failed(`http_${res.status}`, text.slice(0, 200))
  }

  /** A 400 names the envelopes at fault (`/envelopes/3/...`); those move to the dead-letter table. */
  private deadLetterNamed(rows: OutboxRow[], text: string): void {
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
    for (const index of named) {
      const row = rows[index]
      if (!row) continue
      const reason = problems.filter((p) => p.path.startsWith(`/envelopes/${index}`)).map((p) => `${p.path}: ${p.message}`).join('; ')
      this.opts.outbox.deadLetter(row.seq, reason)
      this.opts.metrics.forwarded.inc({ status: 'dead_letter' })
      this.opts.logger.error({ code: 'GW_UPLINK_REFUSED', id: row.id, reason }, 'cloud refused an envelope; moved to dead letter')
    }
  }

  private failed(outcome: string, reason: string, retryAfter?: number): SendResult {
    this.opts.metrics.uplinkRequests.inc({ outcome })
    this.opts.metrics.uplinkUp.set(0)
    this.state.up = false
    this.state.lastError = `${outcome}: ${reason}`
    this.state.consecutiveFailures++
    return retryAfter === undefined ? { kind: 'retry', reason: this.state.lastError } : { kind: 'retry', reason: this.state.lastError, retryAfterMs: retryAfter }
  }
}

/** Retry-After is either delta-seconds or an HTTP date (RFC 9110 §10.2.3). Capped at 5 minutes. */
export function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined
  const seconds = /^\d+$/.test(header.trim()) ? Number(header.trim()) * 1000 : Date.parse(header) - Date.now()
  if (!Number.isFinite(seconds)) return undefined
  return Math.min(Math.max(0, seconds), 300_000)
}
