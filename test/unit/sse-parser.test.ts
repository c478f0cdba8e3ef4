import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { SseParser, type SseEvent } from '../../common/sse.ts'

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
