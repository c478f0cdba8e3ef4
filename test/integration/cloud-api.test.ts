/**
 * cloud-api through Fastify's inject(): auth, validation, idempotence, the error catalogue.
 * The store is the real embedded SQLite store, or a store that is down.
 */
import { gzipSync } from 'node:zlib'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp, type AppDeps } from '../../cloud-api/app.ts'
import { loadCloudConfig } from '../../cloud-api/config.ts'
import { SqliteStore } from '../../cloud-api/store/sqlite-store.ts'
import { StoreUnavailableError, type EventStore } from '../../cloud-api/store/store.ts'
import { StoreRejectedError } from '../../cloud-api/store/influx-http.ts'
import { InfluxStore } from '../../cloud-api/store/influx-store.ts'
import { freePort } from '../../common/ports.ts'
import { hashToken } from '../../common/secrets.ts'
import { silentLogger } from '../../common/logger.ts'
import type { Envelope } from '../../contracts/envelope.ts'
import { EnvelopeFactory } from '../helpers/envelopes.ts'

const GW_TOKEN = 'gateway-token-for-tests-0123456789'
const OTHER_GW_TOKEN = 'other-gateway-token-for-tests-0123'
const READER_TOKEN = 'reader-token-for-tests-0123456789'
const T = Date.now() - 60_000

const config = loadCloudConfig(undefined, {}, {
  gateways: [
    { id: 'gw-test-01', office: 'office-test', tokenHash: hashToken(GW_TOKEN) },
    { id: 'gw-other', office: 'office-other', tokenHash: hashToken(OTHER_GW_TOKEN) },
  ],
  users: [{ name: 'staff', role: 'admin', scope: {}, tokenHashes: [hashToken(READER_TOKEN)] }],
  organization: {
    districts: [
      {
        id: 'district-test',
        name: 'Test district',
        offices: ['office-test', 'office-other'].map((id) => ({ id, name: id, utcOffsetMinutes: 480, enterprises: [], routes: [] })),
      },
    ],
  },
  reads: { open: false },
  center: { path: ':memory:' },
  bodyLimitBytes: 256 * 1024,
})

async function appWith(store: EventStore): Promise<FastifyInstance> {
  await store.open().catch(() => {})
  return buildApp({ config, store, logger: silentLogger() })
}

const ingest = (app: FastifyInstance, envelopes: unknown[], token = GW_TOKEN) =>
  app.inject({ method: 'POST', url: '/v1/ingest', headers: { authorization: `Bearer ${token}` }, payload: { envelopes } })

describe('cloud-api', () => {
  let app: FastifyInstance
  const f = new EnvelopeFactory('gw-test-01', 'office-test')
  beforeAll(async () => {
    app = await appWith(new SqliteStore(':memory:'))
  })
  afterAll(async () => {
    await app.close()
  })

  describe('POST /v1/ingest', () => {
    it('stores a batch and answers per id', async () => {
      const batch = [f.reading('gas-1', T, 12), f.alert('gas-1', T, { alertId: 'gw-test-01:99', state: 'raised' })]
      const res = await ingest(app, batch)
      expect(res.statusCode).toBe(200)
      expect(res.json()).toEqual({ results: batch.map((e) => ({ id: e.id, status: 'stored' })) })
    })

    it('is idempotent: a replay is answered duplicate and stored once', async () => {
      const batch = [f.reading('gas-idem', T, 1), f.reading('gas-idem', T + 1, 2)]
      expect((await ingest(app, batch)).statusCode).toBe(200)
      const replay = await ingest(app, [...batch, f.reading('gas-idem', T + 2, 3)])
      expect(replay.json<{ results: { status: string }[] }>().results.map((r) => r.status)).toEqual(['duplicate', 'duplicate', 'stored'])
      const series = await app.inject({
        url: `/v1/series?device=gas-idem&from=${T}&to=${T + 2}`,
        headers: { authorization: `Bearer ${READER_TOKEN}` },
      })
      expect(series.json<{ points: { value: number }[] }>().points.map((p) => p.value)).toEqual([1, 2, 3])
    })

    it('opens the case of an alert the store already holds but the casebook never saw, when the gateway sends it again', async () => {
      // A batch written in part: its first slice committed, then the store failed (or the
      // process died) before the casebook ran, and the gateway, with no answer, sends it again.
      const store = new SqliteStore(':memory:')
      const center = await appWith(store)
      try {
        const raise = f.alert('gas-partial', T, { alertId: '', state: 'raised', severity: 'critical', message: 'high alarm' })
        const raiseWithId = { ...raise, payload: { ...raise.payload, alertId: raise.id } } as Envelope
        expect(await store.write([raiseWithId])).toEqual(['stored'])
        const resend = await ingest(center, [raiseWithId])
        expect(resend.json<{ results: { status: string }[] }>().results.map((r) => r.status)).toEqual(['duplicate'])
        const res = await center.inject({ url: '/v1/alerts?office=office-test', headers: { authorization: `Bearer ${READER_TOKEN}` } })
        const alerts = res.json<{ alerts: { id: string; state: string }[] }>().alerts
        expect(alerts).toEqual([expect.objectContaining({ id: raise.id, state: 'raised' })])
        // Sent a third time it is still one case, unchanged.
        await ingest(center, [raiseWithId])
        const again = await center.inject({ url: '/v1/alerts?office=office-test', headers: { authorization: `Bearer ${READER_TOKEN}` } })
        expect(again.json<{ alerts: unknown[] }>().alerts).toEqual(alerts)
      } finally {
        await center.close()
        await store.close()
      }
    })

    it('announces an alert before its store write, and a resend after a failed write opens no second case', async () => {
      // The casebook commit numbers and announces an alert; the store write comes after it, so a
      // console is not kept waiting on it. When that write fails the gateway sends the batch again.
      const store = new SqliteStore(':memory:')
      const write = store.write.bind(store)
      let failWrites = true
      store.write = (envelopes) => (failWrites ? Promise.reject(new StoreUnavailableError('connection refused')) : write(envelopes))
      const center = await appWith(store)
      const announced: string[] = []
      // Read through the port the stream route uses, so a regression in the order shows here.
      const { feed } = (center as unknown as { center: AppDeps }).center
      const unsubscribe = feed.subscribe((events) => announced.push(...events.filter((e) => e.event === 'alert').map((e) => (JSON.parse(e.data) as Envelope).id)))
      try {
        const raise = f.alert('gas-early', T, { alertId: '', state: 'raised', severity: 'critical', message: 'high alarm' })
        const raiseWithId = { ...raise, payload: { ...raise.payload, alertId: raise.id } } as Envelope
        const first = await ingest(center, [raiseWithId])
        expect(first.statusCode).toBe(503)
        expect(announced).toEqual([raise.id])

        failWrites = false
        const resend = await ingest(center, [raiseWithId])
        expect(resend.json<{ results: { status: string }[] }>().results.map((r) => r.status)).toEqual(['stored'])
        expect(announced).toEqual([raise.id])
        const res = await center.inject({ url: '/v1/alerts?office=office-test', headers: { authorization: `Bearer ${READER_TOKEN}` } })
        expect(res.json<{ alerts: { id: string; state: string }[] }>().alerts).toEqual([expect.objectContaining({ id: raise.id, state: 'raised' })])
      } finally {
        unsubscribe()
        await center.close()
        await store.close()
      }
    })

    it('accepts a gzip body', async () => {
      const e = f.reading('gas-gz', T, 7)
      const res = await app.inject({
        method: 'POST',
        url: '/v1/ingest',
        headers: { authorization: `Bearer ${GW_TOKEN}`, 'content-type': 'application/json', 'content-encoding': 'gzip' },
        payload: gzipSync(JSON.stringify({ envelopes: [e] })),
      })
      expect(res.statusCode).toBe(200)
      expect(res.json()).toEqual({ results: [{ id: e.id, status: 'stored' }] })
    })

    it('401 without a token, or with an unknown one, and says how to authenticate', async () => {
      const none = await app.inject({ method: 'POST', url: '/v1/ingest', payload: { envelopes: [f.reading('g', T, 1)] } })
      expect(none.statusCode).toBe(401)
      expect(none.headers['www-authenticate']).toBe('Bearer')
      expect(none.json()).toMatchObject({ statusCode: 401, code: 'CLOUD_UNAUTHENTICATED' })
      const wrong = await ingest(app, [f.reading('g', T, 1)], 'not-a-real-token-xxxxxxxxxxxxxxx')
      expect(wrong.statusCode).toBe(401)
    })

    it('a user token cannot ingest: 403, only gateways may', async () => {
      expect((await ingest(app, [f.reading('g', T, 1)], READER_TOKEN)).json()).toMatchObject({ statusCode: 403, message: 'only gateways may ingest' })
    })

    it('403 for envelopes of another gateway or office, and nothing of the batch is stored', async () => {
      const mine = f.reading('gas-403', T, 1)
      const res = await ingest(app, [mine], OTHER_GW_TOKEN)
      expect(res.statusCode).toBe(403)
      expect(res.json()).toMatchObject({
        code: 'CLOUD_FORBIDDEN',
        problems: [
          { path: '/envelopes/0/gateway', message: expect.stringContaining('gw-other') },
          { path: '/envelopes/0/office', message: expect.stringContaining('office-other') },
        ],
      })
      const series = await app.inject({ url: `/v1/series?device=gas-403&from=${T}&to=${T}`, headers: { authorization: `Bearer ${READER_TOKEN}` } })
      expect(series.json<{ points: unknown[] }>().points).toEqual([])
    })

    it('400 names what is wrong and where, and stores nothing of the batch', async () => {
      const good = f.reading('gas-400', T, 1)
      const bad = { ...f.reading('gas-400', T + 1, 2), payload: { quantity: 'gas', value: 'lots', unit: '%LEL' } }
      const res = await ingest(app, [good, bad])
      expect(res.statusCode).toBe(400)
      expect(res.json()).toMatchObject({
        statusCode: 400,
        code: 'CLOUD_INGEST_INVALID',
        message: expect.stringContaining('nothing was stored'),
        problems: [{ path: '/envelopes/1/payload/value', message: expect.stringContaining('number') }],
      })
      const series = await app.inject({ url: `/v1/series?device=gas-400&from=${T}&to=${T + 1}`, headers: { authorization: `Bearer ${READER_TOKEN}` } })
      expect(series.json<{ points: unknown[] }>().points).toEqual([])
    })

    it('400 for a frame error too, with its path', async () => {
      const res = await ingest(app, [{ ...f.reading('g', T, 1), kind: 'telepathy' }])
      expect(res.statusCode).toBe(400)
      expect(res.json<{ problems: { path: string }[] }>().problems[0].path).toBe('/envelopes/0/kind')
    })

    it('400 when id and seq disagree (ids are gateway:seq, never clock-based)', async () => {
      const e = f.reading('g', T, 1)
      const res = await ingest(app, [{ ...e, id: 'gw-test-01:999999' }])
      expect(res.json()).toMatchObject({ code: 'CLOUD_INGEST_INVALID', problems: [{ path: '/envelopes/0/id' }] })
    })

    it('400 for malformed JSON and for an empty batch', async () => {
      const broken = await app.inject({
        method: 'POST',
        url: '/v1/ingest',
        headers: { authorization: `Bearer ${GW_TOKEN}`, 'content-type': 'application/json' },
        payload: '{"envelopes": [',
      })
      expect(broken.statusCode).toBe(400)
      expect(broken.json()).toMatchObject({ code: 'CLOUD_REQUEST_INVALID' })
      expect((await ingest(app, [])).statusCode).toBe(400)
    })

    it('415 for a body that is not JSON, or an encoding it cannot read', async () => {
      const text = await app.inject({
        method: 'POST',
        url: '/v1/ingest',
        headers: { authorization: `Bearer ${GW_TOKEN}`, 'content-type': 'text/plain' },
        payload: 'hello',
      })
      expect(text.statusCode).toBe(415)
      const br = await app.inject({
        method: 'POST',
        url: '/v1/ingest',
        headers: { authorization: `Bearer ${GW_TOKEN}`, 'content-type': 'application/json', 'content-encoding': 'compress' },
        payload: '{}',
      })
      expect(br.statusCode).toBe(415)
    })

    it('413 for a body over the limit, counted on the decompressed size (a gzip bomb is refused)', async () => {
      const plain = JSON.stringify({ envelopes: [{ pad: 'x'.repeat(2 * 1024 * 1024) }] })
      const bomb = gzipSync(plain)
      expect(bomb.length).toBeLessThan(config.bodyLimitBytes)
      const res = await app.inject({
        method: 'POST',
        url: '/v1/ingest',
        headers: { authorization: `Bearer ${GW_TOKEN}`, 'content-type': 'application/json', 'content-encoding': 'gzip' },
        payload: bomb,
      })
      expect(res.statusCode).toBe(413)
      expect(res.json()).toMatchObject({ code: 'CLOUD_BODY_TOO_LARGE' })
    })
  })

  describe('reads', () => {
    it('GET /v1/alerts lists an alert once, whatever its events; a gateway clear marks it cleared but leaves it to a person', async () => {
      const raise = f.alert('gas-alerts', T, { alertId: '', state: 'raised', severity: 'major', message: 'low alarm', value: 26, quantity: 'gas', unit: '%LEL' })
      const raiseWithId = { ...raise, payload: { ...raise.payload, alertId: raise.id } } as Envelope
      const clear = f.alert('gas-alerts', T + 5000, { alertId: raise.id, state: 'cleared', severity: 'major', message: 'normal', value: 4 })
      await ingest(app, [raiseWithId, clear])
      const res = await app.inject({ url: '/v1/alerts?office=office-test&cleared=true', headers: { authorization: `Bearer ${READER_TOKEN}` } })
      expect(res.statusCode).toBe(200)
      const alerts = res.json<{ alerts: { id: string; state: string; device: string; clearedAt?: string; detail: { message: string } }[] }>().alerts
      expect(alerts.filter((a) => a.device === 'gas-alerts')).toEqual([
        expect.objectContaining({ id: raise.id, state: 'raised', clearedAt: new Date(T + 5000).toISOString(), detail: expect.objectContaining({ message: 'low alarm' }) }),
      ])
    })

    it('GET /v1/gaps shows what a gateway had to drop, per device', async () => {
      const gap = f.stamp({
        gateway: 'gw-test-01',
        office: 'office-test',
        device: 'gas-gap',
        ts: T + 1000,
        kind: 'gap',
        payload: { class: 'telemetry', reason: 'quota', from: T - 3_600_000, to: T, count: 5000, kinds: ['reading'] },
      })
      expect((await ingest(app, [gap])).statusCode).toBe(200)
      const res = await app.inject({ url: '/v1/gaps?office=office-test&device=gas-gap', headers: { authorization: `Bearer ${READER_TOKEN}` } })
      expect(res.json<{ gaps: unknown[] }>().gaps).toEqual([
        expect.objectContaining({
          device: 'gas-gap',
          class: 'telemetry',
          reason: 'quota',
          count: 5000,
          from: new Date(T - 3_600_000).toISOString(),
          to: new Date(T).toISOString(),
          recordedAt: new Date(T + 1000).toISOString(),
        }),
      ])
    })

    it('401 without a reader token when reads are not open', async () => {
      expect((await app.inject({ url: '/v1/alerts' })).statusCode).toBe(401)
      expect((await app.inject({ url: '/v1/series?device=x' })).statusCode).toBe(401)
    })

    it('400 for bad query parameters, naming them', async () => {
      const auth = { authorization: `Bearer ${READER_TOKEN}` }
      expect((await app.inject({ url: '/v1/series', headers: auth })).json()).toMatchObject({ statusCode: 400, code: 'CLOUD_REQUEST_INVALID' })
      expect((await app.inject({ url: '/v1/series?device=x&from=yesterday', headers: auth })).json()).toMatchObject({ problems: [{ path: '/from' }] })
      expect((await app.inject({ url: '/v1/series?device=x&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z', headers: auth })).statusCode).toBe(400)
      expect((await app.inject({ url: '/v1/alerts?state=pending', headers: auth })).statusCode).toBe(400)
      // Times Date cannot hold, loose text V8 would still read, and times before 1970: 400, not 500.
      for (const bad of ['from=-1', 'to=9999999999999999', 'to=%2B275760-09-13T00:00:00Z', 'to=1969-12-31T23:59:59Z', 'from=tomorrow%2012:00']) {
        for (const route of ['/v1/series?device=x&quantity=gas', '/v1/gaps?', '/v1/stats/alerts?']) {
          const res = await app.inject({ url: `${route}&${bad}`, headers: auth })
          expect(res.json(), `${route} ${bad}`).toMatchObject({ statusCode: 400, problems: [{ path: `/${bad.split('=')[0]}` }] })
        }
      }
      expect((await app.inject({ url: '/v1/gaps?from=1', headers: auth })).statusCode).toBe(200)
      // Far in the future reads as 2100, where stored times end.
      expect((await app.inject({ url: '/v1/series?device=x&quantity=gas&to=9999999999999', headers: auth })).statusCode).toBe(200)
    })

    it('counts every ingest refusal by code, schema failures included, and every 401 and 403 by route', async () => {
      const center = await appWith(new SqliteStore(':memory:'))
      try {
        const count = async (name: string, labels: string) =>
          Number(new RegExp(`^${name}\\{${labels}\\} (\\d+)`, 'm').exec((await center.inject({ url: '/metrics' })).body)?.[1] ?? 0)
        // A frame the schema refuses (no such kind), a batch of another office's envelopes, no token, a user's token.
        expect((await ingest(center, [{ ...f.reading('gas-1', T, 1), kind: 'weather' }])).statusCode).toBe(400)
        expect((await ingest(center, [new EnvelopeFactory('gw-test-01', 'office-other').reading('gas-1', T, 1)])).statusCode).toBe(403)
        expect((await center.inject({ method: 'POST', url: '/v1/ingest', payload: { envelopes: [] } })).statusCode).toBe(401)
        expect((await ingest(center, [f.reading('gas-1', T, 1)], READER_TOKEN)).statusCode).toBe(403)
        expect((await center.inject({ url: '/v1/alerts' })).statusCode).toBe(401)
        expect(await count('cloud_ingest_rejected_total', 'code="CLOUD_INGEST_INVALID"')).toBe(1)
        expect(await count('cloud_ingest_rejected_total', 'code="CLOUD_FORBIDDEN"')).toBe(2)
        expect(await count('cloud_ingest_rejected_total', 'code="CLOUD_UNAUTHENTICATED"')).toBe(1)
        expect(await count('cloud_auth_failures_total', 'route="/v1/ingest",status="401"')).toBe(1)
        expect(await count('cloud_auth_failures_total', 'route="/v1/ingest",status="403"')).toBe(2)
        expect(await count('cloud_auth_failures_total', 'route="/v1/alerts",status="401"')).toBe(1)
      } finally {
        await center.close()
      }
    })

    it('404 in the same error shape', async () => {
      expect((await app.inject({ url: '/v1/nothing' })).json()).toMatchObject({ statusCode: 404, code: 'CLOUD_NOT_FOUND' })
    })

    it('health, readiness and metrics', async () => {
      const raise = f.alert('gas-metrics', T, { alertId: '', state: 'raised', severity: 'major', message: 'low alarm' })
      expect((await ingest(app, [{ ...raise, payload: { ...raise.payload, alertId: raise.id } }])).statusCode).toBe(200)
      expect((await app.inject({ url: '/healthz' })).json()).toMatchObject({ status: 'ok', store: 'sqlite' })
      expect((await app.inject({ url: '/readyz' })).statusCode).toBe(200)
      const metrics = (await app.inject({ url: '/metrics' })).body
      expect(metrics).toMatch(/cloud_ingest_envelopes_total\{kind="reading",status="stored"\} \d+/)
      expect(metrics).toMatch(/cloud_ingest_rejected_total\{code="CLOUD_INGEST_INVALID"\} \d+/)
      // The alert's batch: its casebook step is timed.
      expect(metrics).toMatch(/cloud_casebook_apply_seconds_count [1-9]\d*/)
    })
  })
})

describe('cloud-api with its store down', () => {
  const down: EventStore = {
    kind: 'influx',
    open: () => Promise.reject(new StoreUnavailableError('connection refused')),
    write: () => Promise.reject(new StoreUnavailableError('connection refused')),
    readings: () => Promise.reject(new StoreUnavailableError('connection refused')),
    alertEvents: () => Promise.reject(new StoreUnavailableError('connection refused')),
    gaps: () => Promise.reject(new StoreUnavailableError('connection refused')),
    series: () => Promise.reject(new StoreUnavailableError('connection refused')),
    scans: () => Promise.reject(new StoreUnavailableError('connection refused')),
    writeLifecycle: () => Promise.reject(new StoreUnavailableError('connection refused')),
    lifecycle: () => Promise.reject(new StoreUnavailableError('connection refused')),
    ping: () => Promise.reject(new StoreUnavailableError('connection refused')),
    close: () => Promise.resolve(),
  }
  let app: FastifyInstance
  beforeAll(async () => {
    app = await appWith(down)
  })
  afterAll(() => app.close())

  it('ingest answers 503 with Retry-After, so the gateway keeps its data and retries', async () => {
    const res = await ingest(app, [new EnvelopeFactory('gw-test-01', 'office-test').reading('g', T, 1)])
    expect(res.statusCode).toBe(503)
    expect(res.headers['retry-after']).toBe('5')
    expect(res.json()).toMatchObject({ code: 'CLOUD_STORE_UNAVAILABLE' })
  })

  it('an alert still opens, with its history and actions, only its readings marked unavailable', async () => {
    const f = new EnvelopeFactory('gw-test-01', 'office-test')
    const raise = f.alert('gas-down', T, { alertId: '', state: 'raised', severity: 'critical', message: 'high alarm', quantity: 'gas', value: 62, unit: '%LEL' })
    const alert = { ...raise, payload: { ...raise.payload, alertId: raise.id } } as Envelope
    // The casebook takes the alert before the store write fails; the gateway keeps it and retries.
    expect((await ingest(app, [alert])).statusCode).toBe(503)
    const res = await app.inject({ url: `/v1/alerts/${encodeURIComponent(raise.id)}`, headers: { authorization: `Bearer ${READER_TOKEN}` } })
    expect(res.statusCode).toBe(200)
    const detail = res.json<{ alert: { id: string; state: string }; history: { action: string }[]; readings?: unknown; readingsUnavailable?: boolean }>()
    expect(detail).toMatchObject({ alert: { id: raise.id, state: 'raised' }, readingsUnavailable: true })
    expect(detail.history.map((h) => h.action)).toEqual(['raised'])
    expect(detail.readings).toBeUndefined()
  })

  it('readiness goes false while liveness stays true', async () => {
    expect((await app.inject({ url: '/readyz' })).statusCode).toBe(503)
    expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200)
  })

  it('readiness says why, without the credentials of the InfluxDB URL (anyone may ask)', async () => {
    const influx = new InfluxStore({ url: `http://grafana:S3cret%40Passw0rd@127.0.0.1:${await freePort()}`, database: 'nowhere', timeoutMs: 500 })
    const unreachable = await appWith(influx)
    try {
      const res = await unreachable.inject({ url: '/ready' })
      expect(res.statusCode).toBe(503)
      expect(res.json<{ reason: string }>().reason).toMatch(/^InfluxDB at http:\/\/127\.0\.0\.1:\d+\/ does not answer/)
      expect(res.body).not.toMatch(/S3cret|grafana/)
    } finally {
      await unreachable.close()
      await influx.close()
    }
    // A store that does put a URL's user and password in its message: /ready leaves them out.
    const leaky = await appWith({ ...down, ping: () => Promise.reject(new StoreUnavailableError('no answer from https://admin:hunter2@db.internal:8086/ping')) })
    try {
      expect((await leaky.inject({ url: '/readyz' })).json()).toMatchObject({ ready: false, reason: 'no answer from https://db.internal:8086/ping' })
    } finally {
      await leaky.close()
    }
  })
})

describe('cloud-api when the store refuses envelopes', () => {
  const refused = (problems: { path: string; message: string }[]) =>
    new StoreRejectedError('InfluxDB write failed: HTTP 400: partial write: points beyond retention policy dropped=1', 400, 'beyond_retention', 1, problems)
  let problems: { path: string; message: string }[] = []
  let app: FastifyInstance
  beforeAll(async () => {
    const store = new SqliteStore(':memory:')
    store.write = () => Promise.reject(refused(problems))
    app = await appWith(store)
  })
  afterAll(() => app.close())

  it('answers 400 naming the envelopes, so the gateway dead-letters those and resends the rest', async () => {
    problems = [{ path: '/envelopes/1/ts', message: 'older than the event store keeps' }]
    const f = new EnvelopeFactory('gw-test-01', 'office-test')
    const res = await ingest(app, [f.reading('g', T, 1), f.reading('g', T, 2)])
    expect(res.statusCode).toBe(400)
    expect(res.json()).toMatchObject({ code: 'CLOUD_STORE_REJECTED', problems })
  })

  it('answers 503 when it names none (the gateway keeps the batch and retries), under its own code', async () => {
    problems = []
    const res = await ingest(app, [new EnvelopeFactory('gw-test-01', 'office-test').reading('g', T, 1)])
    expect(res.statusCode).toBe(503)
    // Not CLOUD_STORE_UNAVAILABLE: the store is up, and an administrator has to look.
    expect(res.json()).toMatchObject({ code: 'CLOUD_STORE_REFUSED' })
    expect(res.headers['retry-after']).toBe('30')
  })
})
