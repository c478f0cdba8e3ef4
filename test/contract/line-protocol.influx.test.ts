/**
 * The store's own line protocol against a real influxd: hostile text in every string field of
 * every kind reads back exactly as sent (the `\'` sequence included, which the `influx` package
 * used to corrupt), and InfluxDB's refusals come back as the right errors.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Envelope } from '../../contracts/envelope.ts'
import { StoreRejectedError } from '../../cloud-api/store/influx-http.ts'
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

  it('a field InfluxDB holds with another type is a StoreRejectedError (field_type_conflict)', async () => {
    const db = 'lp_conflict'
    const store = new InfluxStore({ url: influxd.url, database: db })
    await store.open()
    // Same shard (field types are per shard): a string `value` a minute before the envelope.
    const res = await fetch(`${influxd.url}/write?db=${db}&precision=ms`, { method: 'POST', body: `reading,device=x value="text" ${NOW - 60_000}` })
    expect(res.status).toBe(204)
    const e = { id: 'gw-1:1', seq: 1, gateway: 'gw-1', office: 'o', device: 'd', ts: NOW, kind: 'reading', payload: { quantity: 'gas', value: 1, unit: '' } } as Envelope
    const err = (await store.write([e]).catch((x: unknown) => x)) as StoreRejectedError
    expect(err).toBeInstanceOf(StoreRejectedError)
    expect(err).toBeInstanceOf(StoreUnavailableError)
    expect([err.status, err.reason, err.dropped, err.problems]).toEqual([400, 'field_type_conflict', 1, []])
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
