/**
 * line-protocol.ts against the `influx` package's own serialisation of toPoint(): the bytes the
 * store wrote before it wrote line protocol itself. Byte-identical for every envelope kind, with
 * and without the optional fields, and with hostile text in every string; the one exception is
 * the package's `\'` rewrite (see line-protocol.ts), checked separately against InfluxDB's
 * documented unescaping, and against a real influxd in test/contract/line-protocol.influx.test.ts.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import fc from 'fast-check'
import { InfluxDB, type IPoint } from 'influx'
import { describe, expect, it } from 'vitest'
import type { Envelope } from '../../contracts/envelope.ts'
import { envelopeBodies, envelopeLine, escapeMeasurement, escapeTag, quoteString, timestampNs } from '../../cloud-api/store/line-protocol.ts'
import { pointTime, toPoint } from '../../cloud-api/store/influx-store.ts'
import { InfluxWriter, StoreRejectedError } from '../../cloud-api/store/influx-http.ts'
import { StoreUnavailableError } from '../../cloud-api/store/store.ts'

/** The body `influx`'s writePoints would POST for these points (its HTTP pool stubbed out). */
function influxBody(points: IPoint[]): string {
  const influx = new InfluxDB({ host: '127.0.0.1', database: 'x' })
  let body = ''
  ;(influx as unknown as { _pool: { discard(o: { body: string }): Promise<void> } })._pool.discard = (o) => {
    body = o.body
    return Promise.resolve()
  }
  void influx.writePoints(points, { precision: 'n' })
  return body
}

const NASTY = [
  'plain',
  'say "hi"',
  'back\\slash',
  'trailing\\',
  '\\"',
  'a, b',
  'k=v',
  'two  spaces',
  ' leading and trailing ',
  'line\nbreak',
  'crlf\r\nend',
  'tab\there',
  '老街东口 "north, gate" a=b \\ back\nslash 可燃气体',
  '😀 emoji',
  '',
]

const base = { gateway: 'gw-1', office: 'office-1', device: 'dev-1', ts: 1_700_000_000_123 }

/** One envelope of every kind with every optional field set, and one with none. */
function everyKind(text: string, seq = 1): Envelope[] {
  const full = { ...base, enterprise: 'ent-1', grid: 'g-1' }
  const e = <K extends Envelope['kind']>(kind: K, payload: Extract<Envelope, { kind: K }>['payload'], frame: object = full): Envelope =>
    ({ ...frame, id: `gw-1:${seq}`, seq: seq++, kind, payload }) as Envelope
  return [
    e('reading', { quantity: 'gas', value: 12.5, unit: text }),
    e('reading', { quantity: 'co', value: -3, unit: '' }, base),
    e('reading', { quantity: 'smoke', value: 1e21, unit: 'ppm' }),
    e('reading', { quantity: 'smoke', value: 5e-7, unit: 'ppm' }),
    e('reading', { quantity: 'temperature', value: 0, unit: '°C' }),
    e('aggregate', { quantity: 'gas', unit: text, from: 1_700_000_000_000, to: 1_700_000_060_000, min: 1, max: 9.75, mean: 4.2, count: 12 }),
    e('scan', { tag: text || 't', checkpoint: 'cp-1', staff: 'staff-1', method: 'nfc' }),
    e('scan', { tag: 'tag-1', method: 'qr' }, base),
    e('camera', { event: 'intrusion', confidence: 0.93, channel: 3, region: text, snapshot: text }),
    e('camera', { event: 'smoke', confidence: 1 }, base),
    e('report', { type: 'sos', category: 'fire', text, staff: 'staff-1', photo: 'p/1.jpg', location: { lat: 32.04, lon: -118.63 } }),
    e('report', { type: 'problem' }, base),
    e('status', { state: 'fault', reason: text }),
    e('status', { state: 'online' }, base),
    e('alert', {
      alertId: 'gw-1:1', state: 'raised', type: 'sensor.threshold', severity: 'critical', message: text, cause: 'gw-1:1',
      quantity: 'gas', value: 55.5, unit: '%LEL', threshold: 50, peak: 60, level: 'street', suppressed: 4,
    }),
    e('alert', { alertId: 'gw-1:2', state: 'cleared', type: 'camera.intrusion', severity: 'minor', message: '' }, base),
    e('incident', {
      incidentId: 'gw-1:9', category: 'dumping', description: text, reporter: 'staff-1', level: 'grid',
      location: { lat: 1.5, lon: 2 }, photo: text, cause: 'gw-1:8',
    }),
    e('incident', { incidentId: 'gw-1:10', category: 'dumping', description: 'x', level: 'community' }, base),
    e('gap', { class: 'telemetry', reason: 'quota', from: 1_699_999_000_000, to: 1_700_000_000_000, count: 17, kinds: ['reading', 'aggregate'] }),
    e('gap', { class: 'event', reason: 'ttl', from: 1_699_999_000_000, to: 1_699_999_000_000, count: 1, kinds: ['alert'] }, base),
  ]
}

describe('line protocol of envelopes', () => {
  it('covers every envelope kind', () => {
    expect(new Set(everyKind('x').map((e) => e.kind))).toEqual(new Set(['reading', 'aggregate', 'scan', 'camera', 'report', 'status', 'alert', 'incident', 'gap']))
  })

  for (const text of NASTY) {
    it(`writes the same bytes as the influx package for every kind, text ${JSON.stringify(text)}`, () => {
      for (const e of everyKind(text)) expect(envelopeLine(e), e.kind).toBe(influxBody([toPoint(e)]))
    })
  }

  it('escapes tag values as the influx package does, even values no valid envelope holds', () => {
    for (const text of NASTY.filter((t) => t !== '')) {
      const e = { ...base, id: 'gw-1:1', seq: 1, grid: text, enterprise: text, kind: 'reading', payload: { quantity: text, value: 1, unit: 'u' } } as Envelope
      expect(envelopeLine(e)).toBe(influxBody([toPoint(e)]))
    }
  })

  it('joins a batch into bodies of at most N lines, each as the influx package writes the same points', () => {
    const batch = Array.from({ length: 7 }, (_, i) => everyKind(NASTY[i % NASTY.length], i * 100 + 1)).flat()
    const bodies = envelopeBodies(batch, 50)
    expect(bodies.map((b) => b.first)).toEqual([0, 50, 100])
    expect(bodies.map((b) => b.lines().length)).toEqual([50, 50, 40])
    for (const b of bodies) {
      const points = batch.slice(b.first, b.first + b.lines().length)
      // The bytes sent, as http encoded the package's string.
      expect(b.body.equals(Buffer.from(influxBody(points.map(toPoint)), 'utf8'))).toBe(true)
      expect(b.lines()).toEqual(points.map(envelopeLine))
    }
    expect(envelopeBodies([], 50)).toEqual([])
  })

  it("reuses a device's tag set only while every tag is the same (the series cache)", () => {
    const variants: Partial<Envelope>[] = [{}, { enterprise: 'ent-2' }, { grid: 'g-2' }, { gateway: 'gw-2' }, { office: 'office-2' }, { enterprise: undefined }, { grid: '' }, {}]
    let seq = 1
    for (let round = 0; round < 2; round++) {
      for (const v of variants) {
        for (const kind of ['reading', 'aggregate'] as const) {
          for (const quantity of ['gas', 'co']) {
            const payload = kind === 'reading' ? { quantity, value: seq, unit: '%LEL' } : { quantity, unit: '%LEL', from: 1, to: 2, min: 1, max: 2, mean: 1.5, count: 3 }
            const e = { ...base, enterprise: 'ent-1', grid: 'g-1', ...v, id: `gw-1:${seq}`, seq: seq++, kind, payload } as Envelope
            expect(envelopeLine(e)).toBe(influxBody([toPoint(e)]))
          }
        }
      }
    }
  })

  it('stamps the same nanosecond timestamp as pointTime', () => {
    for (const [ts, seq] of [[1_700_000_000_123, 1], [1_700_000_000_123, 999_999], [1_700_000_000_123, 1_000_000], [946_684_800_000, 123_456_789], [4_102_444_800_000, 2 ** 40]]) {
      expect(timestampNs(ts, seq)).toBe(pointTime(ts, seq))
    }
  })

  it('sends the same bytes as the influx package for arbitrary text, numbers and times (property)', () => {
    // Any UTF-16 string, lone surrogates included, except the `\'` sequence the package rewrites
    // (tested below); compared as the UTF-8 bytes that go on the wire.
    const unit = fc.oneof(
      fc.constantFrom('\\', '"', ',', '=', ' ', '\n', "'", '😀', '老'),
      fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
    )
    const text = fc.string({ unit, maxLength: 40 }).filter((s) => !s.includes("\\'"))
    const wire = (s: string) => Buffer.from(s, 'utf8')
    fc.assert(
      fc.property(
        text,
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.integer({ min: 1, max: 2 ** 40 }),
        fc.integer({ min: 946_684_800_000, max: 4_102_444_800_000 }),
        (s, value, seq, ts) => {
          const batch = everyKind(s, seq).map((e) => ({ ...e, ts, ...(e.kind === 'reading' ? { payload: { ...e.payload, value } } : {}) }) as Envelope)
          const [body] = envelopeBodies(batch)
          expect(body.body.equals(wire(influxBody(batch.map(toPoint))))).toBe(true)
        },
      ),
      { numRuns: 500 },
    )
  })

  it('writes odd timestamps and numbers as pointTime and String() do', () => {
    const odd: [number, number][] = [[0, 1], [5, 7], [999_999, 3], [1_000_000, 0], [-1_700_000_000_000, 5], [1.5, 2], [1_700_000_000_000, -3], [1_700_000_000_000, 2.5]]
    for (const [ts, seq] of odd) {
      const e = { ...base, ts, seq, id: 'gw-1:1', kind: 'reading', payload: { quantity: 'gas', value: 1, unit: 'u' } } as Envelope
      // Not all of these are timestamps the influx package would accept; the text must still be pointTime's.
      expect(envelopeLine(e)).toBe(`reading,device=dev-1,gateway=gw-1,office=office-1,quantity=gas id="gw-1:1",unit="u",value=1 ${pointTime(ts, seq)}`)
    }
    for (const value of [-0, 1e21, 1e-7, -123.456, Number.MAX_VALUE, Number.MIN_VALUE, 2 ** 53 + 2]) {
      const e = { ...base, seq: 1, id: 'gw-1:1', kind: 'reading', payload: { quantity: 'gas', value, unit: 'u' } } as Envelope
      expect(envelopeLine(e)).toBe(influxBody([toPoint(e)]))
    }
  })

  it('writes every number as String() does, two-decimal readings (its own digits) included (property)', () => {
    const line = (value: number) => envelopeLine({ ...base, seq: 1, id: 'gw-1:1', kind: 'reading', payload: { quantity: 'gas', value, unit: 'u' } })
    const expected = (value: number) => `reading,device=dev-1,gateway=gw-1,office=office-1,quantity=gas id="gw-1:1",unit="u",value=${String(value)} ${pointTime(base.ts, 1)}`
    // Where the two-decimal path starts and stops: ulps near 10¹³, cents that round up to a whole,
    // values whose ×100 is inexact (0.07·100 = 7.000000000000001), and ones that only look short.
    const edges = [0, -0, 0.01, -0.01, 0.07, 0.1, 0.29, 0.995, 1.005, 9.99, 10, 99.995, 100.01, 1e13 - 0.01, 1e13, 1e13 + 0.5, 9007199254740.99, 123.456, 0.001, 1e-7, 2 ** 31 + 0.5, -(2 ** 31) - 0.25]
    for (const value of edges) expect(line(value), String(value)).toBe(expected(value))
    const twoDecimals = fc.tuple(fc.integer({ min: -(10 ** 15), max: 10 ** 15 }), fc.constantFrom(1, 10, 100)).map(([n, d]) => n / d)
    fc.assert(
      fc.property(fc.oneof(twoDecimals, fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e14, max: 1e14 })), (value) => {
        expect(line(value)).toBe(expected(value))
      }),
      { numRuns: 20_000 },
    )
  })

  it("stores `\\'` as sent, where the influx package doubled its backslash", () => {
    const e = everyKind("it\\'s")[12]
    expect(e.kind).toBe('status')
    const ours = envelopeLine(e)
    const theirs = influxBody([toPoint(e)])
    expect(ours).toContain(String.raw`reason="it\\'s"`)
    expect(theirs).toContain(String.raw`reason="it\\\\'s"`)
    expect(unescapeStringField(String.raw`it\\'s`)).toBe("it\\'s")
  })

  it('quotes strings so InfluxDB reads back exactly the original (its unescape rules)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (s) => {
        const quoted = quoteString(s)
        expect(quoted.startsWith('"') && quoted.endsWith('"')).toBe(true)
        expect(unescapeStringField(quoted.slice(1, -1))).toBe(s)
      }),
      { numRuns: 1000 },
    )
  })

  it('escapes measurement names and tags per the line protocol reference', () => {
    expect(escapeMeasurement('my measurement,x=1')).toBe('my\\ measurement\\,x=1')
    expect(escapeTag('a b,c=d')).toBe('a\\ b\\,c\\=d')
    expect(escapeTag('gw-tangquan-01')).toBe('gw-tangquan-01')
    expect(quoteString('a "b" \\ c')).toBe('"a \\"b\\" \\\\ c"')
  })
})

describe('InfluxDB write answers', () => {
  /** A stand-in influxd answering every write with one canned answer; records what it got. */
  /** An InfluxDB stand-in giving one answer, or an answer that depends on the body sent. */
  async function fakeInflux(status: number | ((body: string) => [number, string]), body = '') {
    const got: { url: string; auth?: string; body: string }[] = []
    const server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const sent = Buffer.concat(chunks).toString('utf8')
        got.push({ url: req.url ?? '', auth: req.headers.authorization, body: sent })
        const [code, text] = typeof status === 'function' ? status(sent) : [status, body]
        res.writeHead(code, { 'content-type': 'application/json' }).end(text)
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as AddressInfo).port
    return { port, got, close: () => new Promise<void>((r) => server.close(() => r())) }
  }

  async function answer(status: number, influxError: string, lines = ['a v=1 1', 'b v=2 2', 'c v=3 3'], first = 0) {
    const fake = await fakeInflux(status, status === 204 ? '' : JSON.stringify({ error: influxError }))
    const writer = new InfluxWriter({ url: `http://user:p%40ss@127.0.0.1:${fake.port}`, database: 'db 1', timeoutMs: 2000 })
    try {
      await writer.write(lines.join('\n'), lines, first)
      return { err: undefined, got: fake.got }
    } catch (err) {
      return { err: err as Error, got: fake.got }
    } finally {
      writer.close()
      await fake.close()
    }
  }

  it('POSTs the body to /write with the database, ns precision and basic auth from the URL', async () => {
    const { err, got } = await answer(204, '')
    expect(err).toBeUndefined()
    expect(got).toEqual([{ url: '/write?db=db+1&precision=n', auth: `Basic ${Buffer.from('user:p@ss').toString('base64')}`, body: 'a v=1 1\nb v=2 2\nc v=3 3' }])
  })

  it('a line InfluxDB cannot parse is a StoreRejectedError naming its envelope; the others are written', async () => {
    // As InfluxDB does: the lines it cannot parse are named, whatever else the body holds.
    const why: Record<string, string> = { 'b v=2 2': 'invalid field format', 'c v=3 3': 'bad timestamp' }
    const fake = await fakeInflux((sent) => {
      const bad = sent.split('\n').filter((l) => why[l] !== undefined)
      if (bad.length === 0) return [204, '']
      return [400, JSON.stringify({ error: `partial write: ${bad.map((l) => `unable to parse '${l}': ${why[l]}`).join('\n')} dropped=0` })]
    })
    const writer = new InfluxWriter({ url: `http://127.0.0.1:${fake.port}`, database: 'db', timeoutMs: 2000 })
    const lines = ['a v=1 1', 'b v=2 2', 'c v=3 3']
    const err = await writer.write(lines.join('\n'), lines, 4000).then(() => undefined, (e: unknown) => e as Error)
    writer.close()
    await fake.close()
    // The line it could parse was sent again on its own (a harmless rewrite), and accepted.
    expect(fake.got.map((g) => g.body)).toContain('a v=1 1')
    expect(err).toBeInstanceOf(StoreRejectedError)
    expect(err).toBeInstanceOf(StoreUnavailableError)
    const rejected = err as StoreRejectedError
    expect(rejected.reason).toBe('unparsable')
    expect(rejected.status).toBe(400)
    expect(rejected.dropped).toBe(2)
    expect(rejected.problems).toEqual([
      { path: '/envelopes/4001', message: 'InfluxDB cannot parse its line: invalid field format' },
      { path: '/envelopes/4002', message: 'InfluxDB cannot parse its line: bad timestamp' },
    ])
  })

  it('a field type conflict or points beyond retention are refusals naming no envelope', async () => {
    const conflict = (await answer(400, 'partial write: field type conflict: input field "value" on measurement "reading" is type float, already exists as type string dropped=3')).err as StoreRejectedError
    expect(conflict).toBeInstanceOf(StoreRejectedError)
    expect([conflict.reason, conflict.dropped, conflict.problems]).toEqual(['field_type_conflict', 3, []])
    expect(conflict.message).toContain('field type conflict')
    const old = (await answer(400, 'partial write: points beyond retention policy dropped=1')).err as StoreRejectedError
    expect([old.reason, old.dropped, old.problems]).toEqual(['beyond_retention', 1, []])
  })

  it('a server error, missing database or bad credentials is StoreUnavailableError, not a refusal', async () => {
    for (const [status, text] of [[500, 'engine: timeout'], [404, 'database not found: "db 1"'], [401, 'authorization failed'], [403, 'forbidden']] as const) {
      const { err } = await answer(status, text)
      expect(err, String(status)).toBeInstanceOf(StoreUnavailableError)
      expect(err, String(status)).not.toBeInstanceOf(StoreRejectedError)
      expect(err!.message).toContain(text)
    }
  })

  it('no server is StoreUnavailableError', async () => {
    const fake = await fakeInflux(204, '')
    await fake.close()
    const writer = new InfluxWriter({ url: `http://127.0.0.1:${fake.port}`, database: 'd', timeoutMs: 2000 })
    await expect(writer.write('a v=1 1', ['a v=1 1'], 0)).rejects.toBeInstanceOf(StoreUnavailableError)
    writer.close()
  })
})

/** InfluxDB 1.x's models.unescapeStringField: `\\` → `\`, `\"` → `"`, every other byte as is. */
function unescapeStringField(s: string): string {
  let out = ''
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && (s[i + 1] === '\\' || s[i + 1] === '"')) {
      out += s[i + 1]
      i++
    } else {
      out += s[i]
    }
  }
  return out
}
