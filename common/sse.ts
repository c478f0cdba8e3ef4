/**
 * A minimal Server-Sent Events reader (Node 20 has no EventSource), for the demo's live feed,
 * benchmarks and tests. Follows the WHATWG event-stream parsing rules for the fields our server
 * sends: id, event, data (multi-line), comments.
 *
 * node:http rather than fetch: fetch's WHATWG streams put about half a millisecond between a
 * frame reaching the socket and its event here, and bench:alert-latency times the center's
 * stream through this reader, so that half millisecond was the instrument's, not the center's.
 */
import http from 'node:http'
import https from 'node:https'

export interface SseEvent {
  id?: string
  event: string
  data: string
}

export interface SseStream {
  /** Resolves once the response headers arrived (the subscription is live). */
  opened: Promise<void>
  close(): void
  /** Settles when the stream ends or is closed; rejects when the connection fails mid-stream. */
  done: Promise<void>
}

/**
 * Splits an event stream into events, across chunk boundaries. `id` is the event's own id field
 * (the center numbers only replayable events), not EventSource's running last event id.
 */
export class SseParser {
  private buffer = ''
  private current: Partial<SseEvent> = {}
  private started = false

  constructor(private readonly onEvent: (e: SseEvent) => void) {}

  push(text: string): void {
    // The stream may begin with a byte order mark (WHATWG: one is skipped).
    if (!this.started && text.length > 0) {
      this.started = true
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
    }
    this.buffer += text
    let start = 0
    // Where the next CR and LF are, each searched for again only once passed: searching the whole
    // rest of the buffer for a CR at every line made a large chunk of LF-only lines quadratic.
    let cr = -2
    let lf = -2
    for (;;) {
      if (cr < start && cr !== -1) cr = this.buffer.indexOf('\r', start)
      if (lf < start && lf !== -1) lf = this.buffer.indexOf('\n', start)
      const end = cr >= 0 && (lf < 0 || cr < lf) ? cr : lf
      if (end < 0) break
      // A CR at the very end may be the first half of a CRLF still on its way.
      if (end === cr && end === this.buffer.length - 1) break
      this.line(this.buffer.slice(start, end))
      start = end + (end === cr && this.buffer[end + 1] === '\n' ? 2 : 1)
    }
    this.buffer = this.buffer.slice(start)
  }

  private line(line: string): void {
    if (line === '') {
      const { data, event, id } = this.current
      if (data !== undefined) this.onEvent({ event: event || 'message', data, ...(id !== undefined ? { id } : {}) })
      this.current = {}
      return
    }
    if (line.startsWith(':')) return
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    const value = colon < 0 ? '' : line.slice(colon + (line[colon + 1] === ' ' ? 2 : 1))
    if (field === 'data') this.current.data = this.current.data === undefined ? value : `${this.current.data}\n${value}`
    else if (field === 'event') this.current.event = value
    else if (field === 'id') this.current.id = value
  }
}

export function readSse(url: string, onEvent: (e: SseEvent) => void, headers: Record<string, string> = {}): SseStream {
  let closed = false
  let isOpen = false
  let req: http.ClientRequest | undefined
  let markOpen!: () => void
  let failOpen!: (err: Error) => void
  const opened = new Promise<void>((resolve, reject) => {
    markOpen = resolve
    failOpen = reject
  })
  const done = new Promise<void>((resolve, reject) => {
    const get = url.startsWith('https:') ? https.get : http.get
    req = get(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume()
        failOpen(new Error(`SSE ${url}: HTTP ${res.statusCode}`))
        resolve()
        return
      }
      isOpen = true
      markOpen()
      const parser = new SseParser(onEvent)
      res.setEncoding('utf8')
      res.on('data', (text: string) => {
        try {
          parser.push(text)
        } catch (err) {
          // The caller's handler threw: the stream stops and `done` carries the error.
          closed = true
          req?.destroy()
          reject(err instanceof Error ? err : new Error(String(err)))
        }
      })
      res.on('end', () => resolve())
      // Cut off by the other end (not by close()): the caller learns the stream broke.
      res.on('close', () => (closed || res.complete ? resolve() : reject(new Error(`SSE ${url}: connection lost`))))
    })
    req.on('error', (err) => {
      // Before the stream opened (refused, unreachable), the failure is reported through `opened`
      // and `done` just settles; after it, `done` carries it.
      if (closed || !isOpen) resolve()
      else reject(err)
      failOpen(err)
    })
  })
  // A caller that never awaits `opened` (it closed first, say) or `done` must not get an
  // unhandled rejection; those who await them still see it.
  opened.catch(() => undefined)
  done.catch(() => undefined)
  return {
    opened,
    done,
    close: () => {
      closed = true
      // Closed before the headers came: whoever waits for `opened` must not wait forever.
      failOpen(new Error(`SSE ${url}: closed before it opened`))
      req?.destroy()
    },
  }
}
