/**
 * One HTTP(S) POST on a keep-alive connection, answered as status, headers and text.
 *
 * node:http rather than fetch: on loopback fetch added about 0.5 ms at the median, and more at the
 * tail, to every request (its WHATWG streams and Response objects), and an alert pays that on its
 * way to the center. undici's own `request` was as fast but bundles a megabyte of code into the
 * gateway; node:http is already there.
 */
import http from 'node:http'
import https from 'node:https'
import { promisify } from 'node:util'
import { gunzip as gunzipCb } from 'node:zlib'

const gunzip = promisify(gunzipCb)

/** An answer larger than this (after decompression) is not the center's: the request fails. */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024
/**
 * An idle connection is closed after this, or a second before the server's own `Keep-Alive:
 * timeout` if that is sooner (Node's agent applies the hint only under its own timeout), so the
 * gateway does not send on a socket the server is closing.
 */
const IDLE_MS = 30_000

export interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  text: string
}

/** One connection per lane: an alert must never wait on a socket behind a telemetry batch. */
export function laneConnection(url: URL): http.Agent {
  const options = { keepAlive: true, maxSockets: 1, maxFreeSockets: 1, timeout: IDLE_MS }
  return url.protocol === 'https:' ? new https.Agent(options) : new http.Agent(options)
}

/**
 * Sends once, and once more on a fresh connection if a reused one turned out to be closed before
 * any answer (the server or a proxy timed it out as the request left). Ingest is idempotent by
 * envelope id, so the second try is safe; without it that race cost an alert a failure, a count
 * towards the circuit breaker and a backoff.
 */
export async function post(url: URL, agent: http.Agent, headers: Record<string, string>, body: Buffer, signal: AbortSignal): Promise<Answer> {
  try {
    return await postOnce(url, agent, headers, body, signal)
  } catch (err) {
    if (!(err instanceof StaleConnection)) throw err
    return postOnce(url, agent, headers, body, signal)
  }
}

class StaleConnection extends Error {}

function postOnce(url: URL, agent: http.Agent, headers: Record<string, string>, body: Buffer, signal: AbortSignal): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? https.request : http.request
    let answered = false
    const req = send(
      url,
      // The center compresses answers over 1 kB: a 500-envelope answer is ~23 kB plain, ~1.4 kB gzipped.
      { method: 'POST', agent, signal, headers: { ...headers, 'accept-encoding': 'gzip', 'content-length': String(body.length) } },
      (res) => {
        answered = true
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > MAX_ANSWER_BYTES) req.destroy(new Error(`answer over ${MAX_ANSWER_BYTES} bytes`))
          else chunks.push(chunk)
        })
        res.on('end', () => {
          const raw = Buffer.concat(chunks)
          const text = res.headers['content-encoding'] === 'gzip' ? gunzip(raw, { maxOutputLength: MAX_ANSWER_BYTES }).then((b) => b.toString('utf8')) : Promise.resolve(raw.toString('utf8'))
          text.then((t) => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: t }), reject)
        })
        res.on('error', reject)
        // A connection cut mid-answer ends the response without 'end'.
        res.on('aborted', () => reject(new Error('answer cut off')))
      },
    )
    req.on('error', (err: NodeJS.ErrnoException) => {
      const stale = req.reusedSocket && !answered && !signal.aborted && (err.code === 'ECONNRESET' || err.code === 'EPIPE')
      reject(stale ? new StaleConnection(err.message) : err)
    })
    req.end(body)
  })
}
