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
 *   exists as type string`: the shard holds that field with another type (someone else wrote
 *   it). Every such line fails the same way on every retry, so those envelopes are named (sent
 *   again they would hold up the gateway's queue behind them); the fix is in the database.
 * - `points beyond retention policy dropped=N`: points older than the retention policy keeps.
 * - `max-values-per-tag limit exceeded ... value="..."`: a new tag value over the limit; named
 *   like a type conflict. `max-series-per-database` names no line: the batch is kept (503).
 *
 * A 413 (InfluxDB's max-body-size, or a proxy's limit) is not final: the body is written in
 * halves, down to single lines.
 */
import http from 'node:http'
import https from 'node:https'
import type { SchemaProblem } from '../../contracts/validate.ts'
import { StoreRejectedError, StoreUnavailableError, type RejectReason } from './store.ts'

// The refusal types are the store contract's (store.ts); exported here too for existing callers.
export { StoreRejectedError, type RejectReason } from './store.ts'

export interface InfluxWriterOptions {
  /** e.g. http://127.0.0.1:8086 (credentials may be in the URL: http://user:pass@host:8086) */
  url: string
  database: string
  retentionPolicy?: string
  timeoutMs?: number
}

/** A line InfluxDB refuses for good: its index, why, and the refusal it came with. */
interface Refused {
  index: number
  message: string
  error: StoreRejectedError
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
    const answer = await this.attempt(body)
    if (answer === undefined) return
    const all = typeof lines === 'function' ? lines() : lines
    const context = { accepted: false }
    const refused = await this.settle(all, answer, context)
    if (refused.length === 0) return
    const problems = refused.map(({ index, message }) => ({ path: `/envelopes/${first + index}`, message }))
    const { error } = refused[0]
    throw new StoreRejectedError(error.message, error.status, error.reason, problems.length, problems)
  }

  /** One POST: undefined when written, else InfluxDB's answer. Failing to get one is StoreUnavailableError. */
  private async attempt(body: string | Buffer): Promise<Answer | undefined> {
    let answer: Answer
    try {
      answer = await this.post(body)
    } catch (err) {
      throw new StoreUnavailableError(`InfluxDB write failed: ${(err as Error).message}`, { cause: err })
    }
    return answer.status === 204 || answer.status === 200 ? undefined : answer
  }

  /**
   * After InfluxDB refused some of `lines` (its `answer`), makes sure every other line is written
   * and says which lines it refuses for good (indexes into `lines`). Throws when the refusal names
   * no line (the batch is then kept), or when InfluxDB cannot be reached.
   *
   * Why not take InfluxDB's naming as it is: it names one conflict per answer; InfluxDB 1.6 was
   * seen to drop other new points of the same write without counting them; and a field type
   * conflict holds in one shard (one day, say) while our naming matches every line of that
   * measurement and field, in any shard. So the rest is written again (a harmless rewrite), and
   * named lines are tried again unless InfluxDB says it dropped every line it was sent.
   * Every step works on fewer lines than the one before it, so this ends.
   */
  private async settle(lines: readonly string[], answer: Answer, context: { accepted: boolean }): Promise<Refused[]> {
    if (answer.status === 413) return this.halves(lines, answer, context)
    const error = rejection(answer, () => lines, 0)
    if (!(error instanceof StoreRejectedError) || error.problems.length === 0) throw error
    const messages = new Map(error.problems.map((p) => [Number(p.path.slice('/envelopes/'.length)), p.message]))
    if (messages.size === lines.length) {
      // Every line named: final if InfluxDB also says it dropped them all, or for a single line.
      if (lines.length === 1 || error.dropped === lines.length) return [...messages].map(([index, message]) => ({ index, message, error }))
      // Some were written after all: the conflict holds in some shards only. Halved in time
      // order, the halves fall into whole shards within a few steps (halving interleaved times
      // by position would go down to single lines).
      const order = lines.map((_, i) => i).sort((a, b) => compareTimes(lineTime(lines[a]), lineTime(lines[b])))
      const sorted = order.map((i) => lines[i])
      return (await this.halves(sorted, answer, context)).map((r) => ({ ...r, index: order[r.index] }))
    }
    const others: number[] = []
    const refusedHere: number[] = []
    for (let i = 0; i < lines.length; i++) (messages.has(i) ? refusedHere : others).push(i)
    const refused: Refused[] = []
    for (const group of [others, refusedHere]) {
      const part = group.map((i) => lines[i])
      const again = await this.attempt(part.join('\n'))
      if (again === undefined) {
        context.accepted = true
        continue
      }
      for (const r of await this.settle(part, again, context)) refused.push({ ...r, index: group[r.index], message: messages.get(group[r.index]) ?? r.message })
    }
    return refused
  }

  /**
   * A 413 (InfluxDB's max-body-size, or a proxy's limit in front of it): the lines are written in
   * halves, down to single lines. A single line is refused as too large only if it is large, or if
   * InfluxDB took something else of this write: a limit that refuses even one short line is a
   * misconfigured store or proxy, and the batch is kept (503), not set aside line by line.
   */
  private async halves(lines: readonly string[], answer: Answer, context: { accepted: boolean }): Promise<Refused[]> {
    if (lines.length === 1 && answer.status === 413) {
      const bytes = Buffer.byteLength(lines[0])
      const status = `HTTP 413: ${influxMessage(answer.text).slice(0, 200)}`
      if (!context.accepted && bytes < 1024) {
        throw new StoreUnavailableError(`InfluxDB write failed: ${status}, even for one line of ${bytes} bytes: the store's or a proxy's body limit is too small`)
      }
      const error = new StoreRejectedError(`InfluxDB write failed: ${status}`, 413, 'too_large', 1, [])
      return [{ index: 0, message: `InfluxDB refuses its line of ${bytes} bytes as too large (${status})`, error }]
    }
    const half = Math.ceil(lines.length / 2)
    const refused: Refused[] = []
    for (const [part, at] of [[lines.slice(0, half), 0], [lines.slice(half), half]] as const) {
      const again = await this.attempt(part.join('\n'))
      if (again === undefined) {
        context.accepted = true
        continue
      }
      for (const r of await this.settle(part, again, context)) refused.push({ ...r, index: at + r.index })
    }
    return refused
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
    // `input field "value" on measurement "reading" is type float, already exists as type string`:
    // the shard holds that field with another type (written by someone else). Every line of that
    // measurement with that field fails alike, here and on every retry, and the rest of the body
    // was written: name those lines' envelopes, so the gateway sets them aside and its queue moves.
    // InfluxDB names one conflict per answer; another one is named on the next round.
    reason = 'field_type_conflict'
    const m = /input field "([^"]+)" on measurement "([^"]+)" is type (\w+), already exists as type (\w+)/.exec(message)
    if (m) {
      const [, field, measurement, type, existing] = m
      const why = `InfluxDB holds field "${field}" of "${measurement}" as ${existing} for this time, and this point's is ${type}: a type conflict in the database, which only an administrator can clear`
      problems.push(...named(bodyLines(), first, (line) => measurementOf(line) === measurement && hasField(line, field), why))
    }
  } else if (message.includes('beyond retention policy')) {
    reason = 'beyond_retention'
  } else if (message.includes('max-values-per-tag limit exceeded')) {
    // `max-values-per-tag limit exceeded (100000/100000): measurement="reading" tag="device"
    // value="dev-new"`: a new tag value over the database's limit, refused until it is raised.
    reason = 'limit_exceeded'
    const m = /measurement="([^"]+)" tag="([^"]+)" value="([^"]*)"/.exec(message)
    if (m) {
      const [, measurement, tag, value] = m
      const why = `InfluxDB's max-values-per-tag limit refuses a new value "${value}" of tag "${tag}" in "${measurement}"; an administrator must raise the limit`
      problems.push(...named(bodyLines(), first, (line) => measurementOf(line) === measurement && hasTag(line, tag, value), why))
    }
  } else if (message.includes('max-series-per-database limit exceeded')) {
    // Not attributable to lines: the batch is kept and retried (503) until the limit is raised.
    reason = 'limit_exceeded'
  }
  return new StoreRejectedError(summary, answer.status, reason, dropped === undefined ? undefined : Number(dropped), problems)
}

/** A line's timestamp, the digits after its last space (ns; all of ours have one). */
function lineTime(line: string): string {
  return line.slice(line.lastIndexOf(' ') + 1)
}

/** Orders two non-negative integer strings by value. */
function compareTimes(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0)
}

/** Problems for the lines that `match`, at most 1,000 (a batch is at most that many envelopes more or less). */
function named(lines: readonly string[], first: number, match: (line: string) => boolean, message: string): SchemaProblem[] {
  const problems: SchemaProblem[] = []
  for (let i = 0; i < lines.length && problems.length < 1000; i++) if (match(lines[i])) problems.push({ path: `/envelopes/${first + i}`, message })
  return problems
}

// Our lines' measurement names, tag keys, tag values and field keys are identifiers or enums
// (line-protocol.ts): none holds an escaped comma, space or equals sign, so plain searches do.
function measurementOf(line: string): string {
  const end = line.search(/[ ,]/)
  return end < 0 ? line : line.slice(0, end)
}

function hasTag(line: string, tag: string, value: string): boolean {
  const tags = line.slice(0, line.indexOf(' '))
  const at = tags.indexOf(`,${tag}=${value}`)
  const after = at + tag.length + value.length + 2
  return at >= 0 && (after === tags.length || tags[after] === ',')
}

/**
 * Whether the field set has `field`. A string value holding `,field=` could make another line of
 * the measurement match too; that point was written, and naming it only sets it aside at the gateway.
 */
function hasField(line: string, field: string): boolean {
  const fields = line.slice(line.indexOf(' ') + 1)
  return fields.startsWith(`${field}=`) || fields.includes(`,${field}=`)
}
