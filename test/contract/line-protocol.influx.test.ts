/**
 * The store's own line protocol against a real influxd: hostile text in every string field of
 * every kind reads back exactly as sent (the `\'` sequence included, which the `influx` package
 * used to corrupt), and InfluxDB's refusals come back as the right errors.
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest'
import type { Envelope } from '../../contracts/envelope.ts'
import { InfluxWriter, StoreRejectedError } from '../../cloud-api/store/influx-http.ts'
import { InfluxStore, toPoint } from '../../cloud-api/store/influx-store.ts'
import { StoreUnavailableError } from '../../cloud-api/store/store.ts'
import { describeWith, INFLUXD } from '../helpers/binaries.ts'
import { startInfluxd, type RunningInfluxd } from '../helpers/influxd.ts'

/** Recent source times: the raw retention policy drops points older than it keeps. */
const NOW = Date.now() - 3_600_000

const TEXTS = [
  '老街东口 "north, gate" a=b \\ back\nslash 可燃气体',
  "it\\'s \\'quoted\\' twice",
  'trailing backslash\\',
  '\\"',
  'crlf\r\nand\ttab',
  '',
]

async function query(url: string, db: string, q: string): Promise<{ columns: string[]; values: unknown[][] }[]> {
  const res = await fetch(`${url}/query?db=${db}&epoch=ns&q=${encodeURIComponent(q)}`)
  const body = (await res.json()) as { results: { series?: { columns: string[]; values: unknown[][] }[] }[] }
  return body.results[0]?.series ?? []
}

describeWith([INFLUXD])('line protocol against a real influxd', () => {
  let influxd: RunningInfluxd
  beforeAll(async () => {
    influxd = await startInfluxd()
  })
  afterAll(async () => {
    await influxd?.stop()
  })

  it('reads back every field of every kind exactly as toPoint describes it', async () => {
    const store = new InfluxStore({ url: influxd.url, database: 'lp_roundtrip' })
    let seq = 0
    const frame = () => ({ gateway: 'gw-1', office: 'office-1', device: 'dev-1', grid: 'g-1', enterprise: 'ent-1', ts: NOW + seq, id: `gw-1:${++seq}`, seq })
    const batch: Envelope[] = TEXTS.flatMap((text) => [
      { ...frame(), kind: 'reading', payload: { quantity: 'gas', value: 12.5, unit: text } },
      { ...frame(), kind: 'status', payload: { state: 'fault', reason: text } },
      { ...frame(), kind: 'report', payload: { type: 'sos', text, staff: 'staff-1', location: { lat: 32.04, lon: 118.63 } } },
      { ...frame(), kind: 'camera', payload: { event: 'smoke', confidence: 0.5, channel: 2, region: text, snapshot: text } },
      {
        ...frame(),
        kind: 'alert',
        payload: { alertId: 'gw-1:1', state: 'raised', type: 'sensor.threshold', severity: 'major', message: text, value: 3, suppressed: 2, level: 'grid' },
      },
      { ...frame(), kind: 'incident', payload: { incidentId: 'gw-1:2', category: 'dumping', description: text, level: 'grid', photo: text } },
    ] as Envelope[])
    expect(await store.write(batch)).toEqual(batch.map(() => 'stored'))

    for (const e of batch) {
      const point = toPoint(e)
      // Selected by its exact ns timestamp (JSON numbers cannot carry it back exactly).
      const [series] = await query(influxd.url, 'lp_roundtrip', `SELECT * FROM "${point.measurement}" WHERE time = ${point.timestamp as string}`)
      expect(series?.values.length, `${e.kind} ${e.id}`).toBe(1)
      const row = Object.fromEntries(series.columns.map((c, i) => [c, series.values[0][i]]))
      for (const [k, v] of Object.entries({ ...point.tags, ...point.fields })) expect(row[k], `${e.kind}.${k}`).toEqual(v)
    }
  })

  it('a field InfluxDB holds with another type names the envelopes of that field; the rest is stored', async () => {
    const db = 'lp_conflict'
    const store = new InfluxStore({ url: influxd.url, database: db })
    await store.open()
    // Same shard (field types are per shard): a string `value` a minute before the envelopes.
    const res = await fetch(`${influxd.url}/write?db=${db}&precision=ms`, { method: 'POST', body: `reading,device=x value="text" ${NOW - 60_000}` })
    expect(res.status).toBe(204)
    const frame = (seq: number, device: string) => ({ id: `gw-1:${seq}`, seq, gateway: 'gw-1', office: 'o', device, ts: NOW + seq })
    const batch = [
      { ...frame(1, 'd'), kind: 'reading', payload: { quantity: 'gas', value: 1, unit: '' } },
      { ...frame(2, 'd'), kind: 'status', payload: { state: 'online' } },
      { ...frame(3, 'e'), kind: 'reading', payload: { quantity: 'co', value: 2, unit: '' } },
    ] as Envelope[]
    for (let round = 0; round < 2; round++) {
      const err = (await store.write(batch).catch((x: unknown) => x)) as StoreRejectedError
      expect(err).toBeInstanceOf(StoreRejectedError)
      expect(err).toBeInstanceOf(StoreUnavailableError)
      expect([err.status, err.reason, err.dropped]).toEqual([400, 'field_type_conflict', 2])
      // Both readings, of either device, fail alike on every try; the gateway sets them aside.
      expect(err.problems.map((p) => p.path)).toEqual(['/envelopes/0', '/envelopes/2'])
      expect(err.problems[0].message).toMatch(/field "value" of "reading" as string/)
    }
    const [status] = await query(influxd.url, db, 'SELECT count(id) FROM device_status')
    expect(status?.values[0]?.[1]).toBe(1)
  })

  it('a new tag value over max-values-per-tag names its envelopes; the rest is stored', async () => {
    const limited = await startInfluxd({ data: '  max-values-per-tag = 3' })
    try {
      const store = new InfluxStore({ url: limited.url, database: 'lp_limit' })
      const reading = (seq: number, device: string) =>
        ({ id: `gw-1:${seq}`, seq, gateway: 'gw-1', office: 'o', device, ts: NOW + seq, kind: 'reading', payload: { quantity: 'gas', value: seq, unit: '' } }) as Envelope
      // `device` reaches the limit in `reading` (office and quantity take one value each).
      expect(await store.write([reading(1, 'd1'), reading(2, 'd2'), reading(3, 'd3')])).toEqual(['stored', 'stored', 'stored'])
      const err = (await store.write([reading(4, 'd1'), reading(5, 'd-new'), reading(6, 'd2'), reading(7, 'd-new')]).catch((x: unknown) => x)) as StoreRejectedError
      expect(err).toBeInstanceOf(StoreRejectedError)
      expect([err.reason, err.problems.map((p) => p.path)]).toEqual(['limit_exceeded', ['/envelopes/1', '/envelopes/3']])
      // InfluxDB 1.6 says it dropped 2 points but loses d1's too, uncounted: the store writes the
      // rest again, so that "every other envelope was stored" holds.
      const [series] = await query(limited.url, 'lp_limit', 'SELECT count(value) FROM reading')
      expect(series?.values[0]?.[1]).toBe(5)
    } finally {
      await limited.stop()
    }
  })

  it('a body over InfluxDB\'s max-body-size is written in halves; a line too large alone is named', async () => {
    const small = await startInfluxd({ http: '  max-body-size = 4000' })
    try {
      const store = new InfluxStore({ url: small.url, database: 'lp_413' })
      const frame = (seq: number) => ({ id: `gw-1:${seq}`, seq, gateway: 'gw-1', office: 'o', device: 'd', ts: NOW + seq })
      const reading = (seq: number) => ({ ...frame(seq), kind: 'reading', payload: { quantity: 'gas', value: seq, unit: 'ppm' } }) as Envelope
      const batch = Array.from({ length: 300 }, (_, i) => reading(i + 1))
      expect(await store.write(batch)).toEqual(batch.map(() => 'stored'))
      const [all] = await query(small.url, 'lp_413', 'SELECT count(value) FROM reading')
      expect(all?.values[0]?.[1]).toBe(300)
      // 2,000 three-byte characters: one line of about 6 kB, over the 4,000 bytes InfluxDB takes.
      const huge = { ...frame(400), kind: 'status', payload: { state: 'fault', reason: '可'.repeat(2000) } } as Envelope
      const err = (await store.write([reading(401), huge, reading(402)]).catch((x: unknown) => x)) as StoreRejectedError
      expect(err).toBeInstanceOf(StoreRejectedError)
      expect([err.reason, err.problems.map((p) => p.path)]).toEqual(['too_large', ['/envelopes/1']])
      const [after] = await query(small.url, 'lp_413', 'SELECT count(value) FROM reading')
      expect(after?.values[0]?.[1]).toBe(302)
    } finally {
      await small.stop()
    }
  })

  it('a type conflict in one shard names only the envelopes of that shard', async () => {
    const db = 'lp_shards'
    const store = new InfluxStore({ url: influxd.url, database: db })
    await store.open()
    const day = 86_400_000
    const res = await fetch(`${influxd.url}/write?db=${db}&precision=ms`, { method: 'POST', body: `reading,device=x value="text" ${NOW - 3 * day}` })
    expect(res.status).toBe(204)
    const reading = (seq: number, ts: number) =>
      ({ id: `gw-1:${seq}`, seq, gateway: 'gw-1', office: 'o', device: 'd', ts, kind: 'reading', payload: { quantity: 'gas', value: seq, unit: '' } }) as Envelope
    // The first is in the conflicting day's shard, the second three days later.
    const err = (await store.write([reading(1, NOW - 3 * day + 1000), reading(2, NOW)]).catch((x: unknown) => x)) as StoreRejectedError
    expect(err).toBeInstanceOf(StoreRejectedError)
    expect(err.problems.map((p) => p.path)).toEqual(['/envelopes/0'])
    const [series] = await query(influxd.url, db, `SELECT count(id) FROM reading WHERE time > ${(NOW - 60_000) * 1e6}`)
    expect(series?.values[0]?.[1]).toBe(1)
  })

  it('conflicts in some shards of a long batch are settled in a few requests, and only those are named', async () => {
    const db = 'lp_shards_many'
    const store = new InfluxStore({ url: influxd.url, database: db })
    await store.open()
    const day = 86_400_000
    const res = await fetch(`${influxd.url}/write?db=${db}&precision=ms`, { method: 'POST', body: `reading,device=x value="text" ${NOW - 2 * day}` })
    expect(res.status).toBe(204)
    const reading = (seq: number, ts: number) =>
      ({ id: `gw-1:${seq}`, seq, gateway: 'gw-1', office: 'o', device: 'd', ts, kind: 'reading', payload: { quantity: 'gas', value: seq, unit: '' } }) as Envelope
    // Every other reading in the conflicting day: by position, halving would go down to single lines.
    const batch = Array.from({ length: 2000 }, (_, i) => reading(i + 1, i % 2 === 0 ? NOW - 2 * day + i : NOW + i))
    const posts = vi.spyOn(InfluxWriter.prototype as unknown as { post: () => Promise<unknown> }, 'post')
    try {
      const err = (await store.write(batch).catch((x: unknown) => x)) as StoreRejectedError
      expect(err.problems.map((p) => Number(p.path.split('/')[2])).sort((a, b) => a - b)).toEqual(batch.flatMap((_, i) => (i % 2 === 0 ? [i] : [])))
      expect(posts.mock.calls.length).toBeLessThanOrEqual(20)
    } finally {
      posts.mockRestore()
    }
    const [series] = await query(influxd.url, db, `SELECT count(id) FROM reading WHERE time > ${(NOW - 60_000) * 1e6}`)
    expect(series?.values[0]?.[1]).toBe(1000)
  })

  it('a raw policy left longer than configured keeps what it keeps: old envelopes are stored, not named', async () => {
    const db = 'lp_kept_longer'
    // An existing database whose autogen keeps everything (an upgrade), and shortenRetention off.
    await (await fetch(`${influxd.url}/query?q=${encodeURIComponent(`CREATE DATABASE ${db}`)}`, { method: 'POST' })).text()
    const store = new InfluxStore({ url: influxd.url, database: db, rawRetention: '30d' })
    await store.open()
    const old = { id: 'gw-1:1', seq: 1, gateway: 'gw-1', office: 'o', device: 'd', ts: NOW - 100 * 86_400_000, kind: 'reading', payload: { quantity: 'gas', value: 1, unit: '' } } as Envelope
    expect(await store.write([old])).toEqual(['stored'])
    const [series] = await query(influxd.url, db, 'SELECT count(value) FROM reading')
    expect(series?.values[0]?.[1]).toBe(1)
  })

  it('envelopes beyond retention and a type conflict in one batch are all named; the rest is stored', async () => {
    const db = 'lp_retention_conflict'
    const store = new InfluxStore({ url: influxd.url, database: db, rawRetention: '30d' })
    await store.open()
    const res = await fetch(`${influxd.url}/write?db=${db}&precision=ms`, { method: 'POST', body: `reading,device=x value="text" ${NOW - 60_000}` })
    expect(res.status).toBe(204)
    const frame = (seq: number, ts: number) => ({ id: `gw-1:${seq}`, seq, gateway: 'gw-1', office: 'o', device: 'd', ts })
    const batch = [
      { ...frame(1, NOW - 40 * 86_400_000), kind: 'status', payload: { state: 'online' } },
      { ...frame(2, NOW), kind: 'reading', payload: { quantity: 'gas', value: 1, unit: '' } },
      { ...frame(3, NOW + 5), kind: 'status', payload: { state: 'online' } },
    ] as Envelope[]
    const err = (await store.write(batch).catch((x: unknown) => x)) as StoreRejectedError
    expect(err.problems.map((p) => p.path)).toEqual(['/envelopes/0/ts', '/envelopes/1'])
    const [series] = await query(influxd.url, db, 'SELECT count(id) FROM device_status')
    expect(series?.values[0]?.[1]).toBe(1)
  })

  it('a proxy that answers 413 to everything is the store unavailable, not every envelope too large', async () => {
    const { createServer } = await import('node:http')
    let requests = 0
    const proxy = createServer((req, res) => {
      requests++
      req.resume()
      req.on('end', () => res.writeHead(413, { 'content-type': 'text/html' }).end('<html>413 Request Entity Too Large</html>'))
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    try {
      const port = (proxy.address() as { port: number }).port
      const store = new InfluxStore({ url: `http://127.0.0.1:${port}`, database: 'lp_proxy' })
      ;(store as unknown as { opened: boolean }).opened = true
      const batch = Array.from({ length: 1000 }, (_, i): Envelope => ({ id: `gw-1:${i + 1}`, seq: i + 1, gateway: 'gw-1', office: 'o', device: 'd', ts: NOW + i, kind: 'reading', payload: { quantity: 'gas', value: i, unit: '' } }))
      const err = (await store.write(batch).catch((x: unknown) => x)) as Error
      expect(err).toBeInstanceOf(StoreUnavailableError)
      expect(err).not.toBeInstanceOf(StoreRejectedError)
      // Halving down one side to a single short line, not every line of the batch.
      expect(requests).toBeLessThanOrEqual(12)
    } finally {
      proxy.close()
    }
  })

  it('query literals keep backslashes, quotes and newlines inside the string (no InfluxQL injection)', async () => {
    const store = new InfluxStore({ url: influxd.url, database: 'lp_literals' })
    await store.open()
    const row = (id: string, office: string, subjectId: string) =>
      ({ id, ts: NOW, office, subject: 'alert', subjectId, action: 'acknowledge', actor: 'u', state: 'acknowledged' }) as const
    await store.writeLifecycle([row('lc:1:1', 'o', 'gw\\1'), row('lc:1:2', 'o', 'gw-2'), row('lc:1:3', 'o', "gw\\n'q"), row('lc:1:4', 'p', 'gw-4')])
    const ids = async (q: { office?: string; subjectId?: string }) => (await store.lifecycle({ ...q, from: NOW - 1000, to: NOW + 1000, limit: 10 })).map((r) => r.subjectId)
    expect(await ids({ subjectId: 'gw\\1' })).toEqual(['gw\\1'])
    expect(await ids({ subjectId: "gw\\n'q" })).toEqual(["gw\\n'q"])
    expect(await ids({ subjectId: 'gw\nnewline' })).toEqual([])
    // A trailing backslash used to escape the closing quote and let the next value be InfluxQL.
    expect(await ids({ office: 'zz\\', subjectId: ' OR "office" =~ /./ --' })).toEqual([])
  })

  it('audit rows InfluxDB refuses for good are named; the other rows are written', async () => {
    const db = 'lp_audit'
    const store = new InfluxStore({ url: influxd.url, database: db })
    await store.open()
    // `note` held as a float in this shard: a string note conflicts.
    const res = await fetch(`${influxd.url}/write?db=${db}&rp=long_term&precision=ms`, { method: 'POST', body: `lifecycle,office=x note=1 ${NOW - 1000}` })
    expect(res.status).toBe(204)
    const rows = [
      { id: 'lc:1:1', ts: NOW, office: 'o', subject: 'alert' as const, subjectId: 'gw-1:1', action: 'acknowledge', actor: 'u', state: 'acknowledged', note: 'on my way' },
      { id: 'lc:1:2', ts: NOW + 1, office: 'o', subject: 'alert' as const, subjectId: 'gw-1:1', action: 'resolve', actor: 'u', state: 'resolved' },
    ]
    const err = (await store.writeLifecycle(rows).catch((x: unknown) => x)) as StoreRejectedError
    expect(err).toBeInstanceOf(StoreRejectedError)
    expect(err.problems.map((p) => p.path)).toEqual(['/envelopes/0'])
    const [series] = await query(influxd.url, db, 'SELECT count(state) FROM long_term.lifecycle')
    expect(series?.values[0]?.[1]).toBe(1)
  })

  it('two conflicts in one write: both rows are named, and every other row is written', async () => {
    const db = 'lp_audit2'
    const store = new InfluxStore({ url: influxd.url, database: db })
    await store.open()
    const res = await fetch(`${influxd.url}/write?db=${db}&rp=long_term&precision=ms`, { method: 'POST', body: `lifecycle,office=x note=1,department=2 ${NOW - 1000}` })
    expect(res.status).toBe(204)
    const row = (n: number, extra: object) => ({ id: `lc:1:${n}`, ts: NOW + n, office: 'o', subject: 'alert' as const, subjectId: 'gw-1:1', action: 'acknowledge', actor: 'u', state: 'acknowledged', ...extra })
    const rows = [row(1, { note: 'on my way' }), row(2, { department: 'fire' }), row(3, {}), row(4, {})]
    const err = (await store.writeLifecycle(rows).catch((x: unknown) => x)) as StoreRejectedError
    expect(err).toBeInstanceOf(StoreRejectedError)
    // InfluxDB names one conflict per answer; both are found, and rows 3 and 4 are in.
    expect(err.problems.map((p) => p.path).sort()).toEqual(['/envelopes/0', '/envelopes/1'])
    const [series] = await query(influxd.url, db, 'SELECT count(state) FROM long_term.lifecycle')
    expect(series?.values[0]?.[1]).toBe(2)
  })

  it('envelopes older than the raw retention are a StoreRejectedError naming them; the rest is stored', async () => {
    const db = 'lp_retention'
    const store = new InfluxStore({ url: influxd.url, database: db, rawRetention: '30d' })
    const e = (seq: number, ts: number) => ({ id: `gw-1:${seq}`, seq, gateway: 'gw-1', office: 'o', device: 'd', ts, kind: 'reading', payload: { quantity: 'gas', value: seq, unit: '' } }) as Envelope
    const tooOld = NOW - 40 * 86_400_000
    const err = (await store.write([e(1, NOW), e(2, tooOld), e(3, NOW + 1), e(4, tooOld + 1)]).catch((x: unknown) => x)) as StoreRejectedError
    expect(err).toBeInstanceOf(StoreRejectedError)
    expect([err.status, err.reason, err.dropped]).toEqual([400, 'beyond_retention', 2])
    expect(err.problems.map((p) => p.path)).toEqual(['/envelopes/1/ts', '/envelopes/3/ts'])
    const [series] = await query(influxd.url, db, 'SELECT count(value) FROM reading')
    expect(series?.values[0]?.[1]).toBe(2)
  })

  it('a database dropped under the store is StoreUnavailableError once, then created again', async () => {
    const db = 'lp_dropped'
    const store = new InfluxStore({ url: influxd.url, database: db })
    const e = (seq: number) => ({ id: `gw-1:${seq}`, seq, gateway: 'gw-1', office: 'o', device: 'd', ts: NOW, kind: 'reading', payload: { quantity: 'gas', value: seq, unit: '' } }) as Envelope
    await store.write([e(1)])
    // InfluxDB sends the answer's headers before it runs the statement: wait for the body.
    await (await fetch(`${influxd.url}/query?q=${encodeURIComponent(`DROP DATABASE ${db}`)}`, { method: 'POST' })).text()
    const err = (await store.write([e(2)]).catch((x: unknown) => x)) as Error
    expect(err).toBeInstanceOf(StoreUnavailableError)
    expect(err).not.toBeInstanceOf(StoreRejectedError)
    expect(await store.write([e(3)])).toEqual(['stored'])
    const [series] = await query(influxd.url, db, 'SELECT count(value) FROM reading')
    expect(series?.values[0]?.[1]).toBe(1)
  })
})
