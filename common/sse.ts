/**
 * A minimal Server-Sent Events reader over fetch (Node 20 has no EventSource), for the demo's
 * live feed, benchmarks and tests. Follows the WHATWG event-stream parsing rules for the fields
 * our server sends: id, event, data (multi-line), comments.
 */
export interface SseEvent {
  id?: string
  event: string
  data: string
}

export interface SseStream {
  /** Resolves once the response headers arrived (the subscription is live). */
  opened: Promise<void>
  close(): void
  /** Settles when the stream ends or is closed. */
  done: Promise<void>
}

export function readSse(url: string, onEvent: (e: SseEvent) => void, headers: Record<string, string> = {}): SseStream {
  const abort = new AbortController()
  let markOpen!: () => void
  let failOpen!: (err: Error) => void
  const opened = new Promise<void>((resolve, reject) => {
    markOpen = resolve
    failOpen = reject
  })
  const done = (async () => {
    let res: Response
    try {
      res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal })
    } catch (err) {
      failOpen(err as Error)
      return
    }
    if (!res.ok || !res.body) {
      failOpen(new Error(`SSE ${url}: HTTP ${res.status}`))
      return
    }
    markOpen()
    const decoder = new TextDecoder()
    let buffer = ''
    let current: Partial<SseEvent> & { data?: string } = {}
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true })
        let nl: number
        while ((nl = buffer.search(/\r\n|\n|\r/)) >= 0) {
          const line = buffer.slice(0, nl)
          buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1))
          if (line === '') {
            if (current.data !== undefined) {
              onEvent({ event: current.event ?? 'message', data: current.data, ...(current.id !== undefined ? { id: current.id } : {}) })
            }
            current = {}
            continue
          }
          if (line.startsWith(':')) continue
          const colon = line.indexOf(':')
          const field = colon < 0 ? line : line.slice(0, colon)
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
          if (field === 'data') current.data = current.data === undefined ? value : `${current.data}\n${value}`
          else if (field === 'event') current.event = value
          else if (field === 'id') current.id = value
        }
      }
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err
    }
  })()
  return { opened, done, close: () => abort.abort() }
}
