/**
 * Line protocol to InfluxDB 1.x's `POST /write` over keep-alive HTTP, and what its answers mean
 * for the API.
 *
 * - 204: written.
 * - No answer, a timeout, 5xx, 401/403 (credentials), 404 (database missing): StoreUnavailableError.
 *   The gateway keeps its data and retries; nothing about the envelopes is wrong.
 * - 400 (and 413, 422): InfluxDB refused points of this body. StoreRejectedError, a kind of
 *   StoreUnavailableError (so an API that knows only the latter still answers 503 and the
 *   gateway keeps the data), which also says why and, where InfluxDB names the lines it could
 *   not parse, which envelopes they came from (`problems`, `/envelopes/<i>` paths). A 400
 *   naming envelopes lets the gateway dead-letter exactly those and send the rest again.
 *
 * InfluxDB 1.x answers 400 in three ways, all "partial writes" in which every other point of the
 * body *was* written:
 * - `unable to parse '<line>': <why>`: a line it cannot read. Never for a line of
 *   line-protocol.ts from a valid envelope; attributable to the line, so to its envelope.
 * - `field type conflict: input field "value" on measurement "reading" is type float, already
 *   exists as type string`: the database holds that field with another type (someone else wrote
 *   it). Every such line of the batch fails the same way; the fix is in the database, not the data.
 * - `points beyond retention policy dropped=N`: points older than the retention policy keeps.
 */
import http from 'node:http'
import https from 'node:https'
import type { SchemaProblem } from '../../contracts/validate.ts'
import { StoreUnavailableError } from './store.ts'

export type RejectReason = 'unparsable' | 'field_type_conflict' | 'beyond_retention' | 'other'

/** InfluxDB refused points of a write (HTTP 4xx other than auth and a missing database). */
export class StoreRejectedError extends StoreUnavailableError {
  constructor(
    message: string,
    /** InfluxDB's HTTP status. */
    readonly status: number,
    readonly reason: RejectReason,
    /** Points InfluxDB says it dropped (`dropped=N`), when it says. */
    readonly dropped: number | undefined,
    /** The envelopes at fault, where InfluxDB names them; paths are `/envelopes/<index in the batch>`. */
    readonly problems: SchemaProblem[],
  ) {
    super(message)
    this.name = 'StoreRejectedError'
  }
}

export interface InfluxWriterOptions {
  /** e.g. http://127.0.0.1:8086 (credentials may be in the URL: http://user:pass@host:8086) */
  url: string
  database: string
  retentionPolicy?: string
  timeoutMs?: number
}

/** One body's answer from InfluxDB, before it is turned into an error. */
interface Answer {
  status: number
  text: string
}

export class InfluxWriter {
  private readonly agent: http.Agent
  private readonly client: typeof http | typeof https
  private readonly requestOptions: http.RequestOptions
  private readonly timeoutMs: number

  constructor(private readonly options: InfluxWriterOptions) {
    const url = new URL(options.url)
    const secure = url.protocol === 'https:'
    this.client = secure ? https : http
    this.agent = new this.client.Agent({ keepAlive: true, keepAliveMsecs: 10_000, maxSockets: 16 })
    this.timeoutMs = options.timeoutMs ?? 10_000
    const query = new URLSearchParams({ db: options.database, precision: 'n' })
    if (options.retentionPolicy) query.set('rp', options.retentionPolicy)
    const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' }
    if (url.username) {
      const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`
      headers.authorization = `Basic ${Buffer.from(credentials).toString('base64')}`
    }
    this.requestOptions = {
      method: 'POST',
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: Number(url.port || (secure ? 443 : 8086)),
      path: `${url.pathname.replace(/\/+$/, '')}/write?${query.toString()}`,
      headers,
      agent: this.agent,
    }
  }

  /**
   * Writes one body of lines. `lines` (the body's lines, in order, or a function that makes them)
   * and `first` (the batch index of the first) only serve to name the envelopes of lines InfluxDB
   * could not parse.
   */
  async write(body: string | Buffer, lines: readonly string[] | (() => readonly string[]), first: number): Promise<void> {
    let answer: Answer
    try {
      answer = await this.post(body)
    } catch (err) {
      throw new StoreUnavailableError(`InfluxDB write failed: ${(err as Error).message}`, { cause: err })
    }
    if (answer.status === 204 || answer.status === 200) return
    throw rejection(answer, typeof lines === 'function' ? lines : () => lines, first)
  }

  close(): void {
    this.agent.destroy()
  }

  private post(body: string | Buffer): Promise<Answer> {
    const payload = typeof body === 'string' ? Buffer.from(body, 'utf8') : body
    return new Promise<Answer>((resolve, reject) => {
      const req = this.client.request({ ...this.requestOptions, headers: { ...this.requestOptions.headers, 'content-length': payload.length } }, (res) => {
        const status = res.statusCode ?? 0
        if (status === 204) {
          res.resume()
          res.once('end', () => resolve({ status, text: '' }))
          res.once('error', reject)
          return
        }
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.once('end', () => resolve({ status, text: Buffer.concat(chunks).toString('utf8') }))
        res.once('error', reject)
      })
      // One deadline from now, waiting for a pooled socket included (setTimeout on the request
      // would only start once a socket is assigned, so a hung InfluxDB would pile requests up).
      const deadline = setTimeout(() => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs)
      req.once('close', () => clearTimeout(deadline))
      req.once('error', reject)
      req.end(payload)
    })
  }
}

/** InfluxDB's `{"error": "..."}`, or the raw text. */
function influxMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: unknown }
    if (typeof parsed.error === 'string') return parsed.error
  } catch {
    // not JSON (a proxy's page, say)
  }
  return text.slice(0, 500)
}

function rejection(answer: Answer, bodyLines: () => readonly string[], first: number): StoreUnavailableError {
  const message = influxMessage(answer.text)
  const summary = `InfluxDB write failed: HTTP ${answer.status}: ${message.length > 500 ? `${message.slice(0, 500)}…` : message}`
  if (answer.status !== 400 && answer.status !== 413 && answer.status !== 422) return new StoreUnavailableError(summary)
  const dropped = /dropped=(\d+)/.exec(message)?.[1]
  let reason: RejectReason = 'other'
  const problems: SchemaProblem[] = []
  if (message.includes('unable to parse')) {
    reason = 'unparsable'
    const lines = bodyLines()
    for (let i = 0; i < lines.length && problems.length < 20; i++) {
      const named = `unable to parse '${lines[i]}': `
      const at = message.indexOf(named)
      if (at < 0) continue
      const why = (/^[^\n]*/.exec(message.slice(at + named.length))?.[0] ?? '').replace(/ dropped=\d+$/, '')
      problems.push({ path: `/envelopes/${first + i}`, message: `InfluxDB cannot parse its line: ${why}` })
    }
  } else if (message.includes('field type conflict')) {
    reason = 'field_type_conflict'
  } else if (message.includes('beyond retention policy')) {
    reason = 'beyond_retention'
  }
  return new StoreRejectedError(summary, answer.status, reason, dropped === undefined ? undefined : Number(dropped), problems)
}
