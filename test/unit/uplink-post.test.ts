/**
 * The uplink's HTTP POST (gateway/uplink/post.ts) against a raw TCP server that plays the part
 * of a center or proxy closing a kept-alive connection just as the next request arrives.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { gzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import { laneConnection, post } from '../../gateway/uplink/post.ts'

const ok = (body: Buffer, gzip = false) =>
  Buffer.concat([
    Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n${gzip ? 'content-encoding: gzip\r\n' : ''}content-length: ${body.length}\r\nconnection: keep-alive\r\n\r\n`),
    body,
  ])

let server: Server | undefined
afterEach(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)))
  server = undefined
})

/** Answers `answer(n)` to the n-th request of each connection; `undefined` means: drop the connection instead. */
async function listen(answer: (connection: number, request: number) => Buffer | undefined): Promise<{ url: URL; connections: () => number }> {
  let connections = 0
  const open = new Set<Socket>()
  server = createServer((socket) => {
    const connection = ++connections
    open.add(socket)
    let requests = 0
    socket.on('data', () => {
      const reply = answer(connection, ++requests)
      if (reply) socket.write(reply)
      else socket.destroy()
    })
    socket.on('close', () => open.delete(socket))
  })
  server.on('close', () => open.forEach((s) => s.destroy()))
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
  return { url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/ingest`), connections: () => connections }
}

const body = Buffer.from('{"envelopes":[]}')
const signal = () => AbortSignal.timeout(5000)

describe('uplink POST', () => {
  it('sends again on a new connection when the kept-alive one is closed as the request goes out', async () => {
    // The first connection answers once, then drops at the second request without a word.
    const center = await listen((connection, request) => (connection === 1 && request === 2 ? undefined : ok(Buffer.from(`{"n":${request}}`))))
    const agent = laneConnection(center.url)
    try {
      expect((await post(center.url, agent, {}, body, signal())).text).toBe('{"n":1}')
      const second = await post(center.url, agent, {}, body, signal())
      expect(second).toMatchObject({ status: 200, text: '{"n":1}' })
      expect(center.connections()).toBe(2)
    } finally {
      agent.destroy()
    }
  })

  it('does not send again when a fresh connection fails: that is the center down, for the backoff', async () => {
    const center = await listen(() => undefined)
    const agent = laneConnection(center.url)
    try {
      await expect(post(center.url, agent, {}, body, signal())).rejects.toThrow()
      expect(center.connections()).toBe(1)
    } finally {
      agent.destroy()
    }
  })

  it('reads a gzipped answer', async () => {
    const text = JSON.stringify({ results: Array.from({ length: 500 }, (_, i) => ({ id: `gw:${i}`, status: 'stored' })) })
    const center = await listen(() => ok(gzipSync(text), true))
    const agent = laneConnection(center.url)
    try {
      expect((await post(center.url, agent, {}, body, signal())).text).toBe(text)
    } finally {
      agent.destroy()
    }
  })
})
