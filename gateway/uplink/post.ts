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

/** An answer larger than this is not the center's: the request fails instead of filling memory. */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024

export interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  text: string
}

/** One connection per lane: an alert must never wait on a socket behind a telemetry batch. */
export function laneConnection(url: URL): http.Agent {
  const options = { keepAlive: true, maxSockets: 1, maxFreeSockets: 1 }
  return url.protocol === 'https:' ? new https.Agent(options) : new http.Agent(options)
}

export function post(url: URL, agent: http.Agent, headers: Record<string, string>, body: Buffer, signal: AbortSignal): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? https.request : http.request
    const req = send(url, { method: 'POST', agent, signal, headers: { ...headers, 'content-length': String(body.length) } }, (res) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > MAX_ANSWER_BYTES) req.destroy(new Error(`answer over ${MAX_ANSWER_BYTES} bytes`))
        else chunks.push(chunk)
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
      // A connection cut mid-answer ends the response without 'end'.
      res.on('aborted', () => reject(new Error('answer cut off')))
    })
    req.on('error', reject)
    req.end(body)
  })
}
