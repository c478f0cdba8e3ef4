import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { readSse, SseParser, type SseEvent } from '../../common/sse.ts'

function parse(chunks: string[]): SseEvent[] {
  const events: SseEvent[] = []
  const parser = new SseParser((e) => events.push(e))
  for (const c of chunks) parser.push(c)
  return events
}

const STREAM =
  'retry: 2000\n: connected, head 7\n\n' +
  'id: 8\nevent: alert\ndata: {"a":1}\n\n' +
  'event: reading\r\ndata: first\r\ndata:second\r\n\r\n' +
  'data: cr only\r\rdata\n\n' +
  'id: 9\nevent: alert_update\ndata: {"b":"ü 网格"}\n\n' +
  'data: no blank line yet\n'

const EXPECTED: SseEvent[] = [
  { id: '8', event: 'alert', data: '{"a":1}' },
  { event: 'reading', data: 'first\nsecond' },
  { event: 'message', data: 'cr only' },
  { event: 'message', data: '' },
  { id: '9', event: 'alert_update', data: '{"b":"ü 网格"}' },
]

describe('SseParser (WHATWG event-stream rules for the fields the center sends)', () => {
  it('reads ids, event names, multi-line data, comments and all three line endings', () => {
    expect(parse([STREAM])).toEqual(EXPECTED)
  })

  it('gives the same events however the stream is cut into chunks, CRLF halves included', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: STREAM.length - 1 }), { maxLength: 12 }), (cuts) => {
        const at = [0, ...cuts.sort((a, b) => a - b), STREAM.length]
        const chunks = at.slice(1).map((end, i) => STREAM.slice(at[i], end))
        expect(parse(chunks)).toEqual(EXPECTED)
      }),
      { numRuns: 300 },
    )
  })

  it('does not emit an event before its blank line', () => {
    expect(parse(['id: 1\nevent: alert\ndata: x\n'])).toEqual([])
  })
})

describe('SseParser edge cases', () => {
  it('skips a byte order mark at the start, and names an event with an empty event field "message"', () => {
    expect(parse(['\uFEFFevent: alert\ndata: x\n\n', 'event:\ndata: y\n\n', '\uFEFFdata: z\n\n'])).toEqual([
      { event: 'alert', data: 'x' },
      { event: 'message', data: 'y' },
      // Only the stream's first character may be a BOM to skip; later one is part of its line.
    ])
  })
})

describe('readSse', () => {
  let server: Server
  let url: string
  beforeAll(async () => {
    // Answers /slow only after the test is done with it, /events at once.
    server = createServer((req, res) => {
      if (req.url === '/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write('id: 1\nevent: alert\ndata: {}\n\n')
      }
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })

  it('closed before the headers came: `opened` rejects and `done` settles', async () => {
    const stream = readSse(`${url}/slow`, () => undefined)
    stream.close()
    await expect(stream.opened).rejects.toThrow(/closed before it opened/)
    await expect(stream.done).resolves.toBeUndefined()
  })

  it('refused: `opened` rejects with the cause and `done` settles', async () => {
    const stream = readSse('http://127.0.0.1:1/events', () => undefined)
    await expect(stream.opened).rejects.toThrow(/ECONNREFUSED/)
    await expect(stream.done).resolves.toBeUndefined()
  })

  it('delivers events once open, and `done` settles when the caller closes', async () => {
    const events: SseEvent[] = []
    const stream = readSse(`${url}/events`, (e) => {
      events.push(e)
      stream.close()
    })
    await stream.opened
    await expect(stream.done).resolves.toBeUndefined()
    expect(events).toEqual([{ id: '1', event: 'alert', data: '{}' }])
  })
})
