/**
 * The center API through Fastify's inject(): every route against every role, scoping, the alert
 * and incident lifecycle, concurrency, escalation by SLA, sign-in, administration, gateway health,
 * patrol compliance and statistics. The event store is the real embedded SQLite store.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Envelope } from '../../contracts/envelope.ts'
import { FieldFactory, startCenter, TOKENS, type TestCenter, type Who } from '../helpers/center.ts'
import { waitFor } from '../helpers/wait.ts'
import { readSse, type SseEvent } from '../../common/sse.ts'
import { SqliteStore } from '../../cloud-api/store/sqlite-store.ts'
import { createLogger } from '../../common/logger.ts'
import { StoreRejectedError } from '../../cloud-api/store/influx-http.ts'
import { StoreUnavailableError } from '../../cloud-api/store/store.ts'
import { capturingLogger } from '../helpers/stack.ts'
import { removeTestDir } from '../helpers/temp.ts'

const T = Date.UTC(2026, 10, 20, 0, 30) // 08:30 in the offices' local time (UTC+8)
const a = new FieldFactory('gw-a', 'o-a')
const c = new FieldFactory('gw-c', 'o-c')

interface CaseJson {
  id: string
  kind: string
  office: string
  device: string
  type: string
  state: string
  level: string
  severity: string
  version: number
  escalations: number
  acknowledgedBy?: string
  assignedTo?: string
  clearedAt?: string
  detail: Record<string, unknown>
}
const ids = (res: LightMyRequestResponse, key = 'alerts') => res.json<Record<string, CaseJson[]>>()[key].map((x) => x.id).sort()

describe('center API', () => {
  let center: TestCenter
  const seeded: Record<string, Envelope> = {}

  beforeAll(async () => {
    center = await startCenter({ now: T + 60_000 })
    seeded.a1 = a.alertOf('gas-a1', T, { enterprise: 'e-a1', severity: 'critical', value: 55 })
    seeded.a2 = a.alertOf('gas-a2', T, { enterprise: 'e-a2', severity: 'minor', value: 26 })
    seeded.patrol = a.alertOf('r-a', T, { type: 'patrol.checkpoint_missed' })
    seeded.camera = a.alertOf('cam-a', T, { type: 'camera.intrusion' })
    seeded.incident = a.incident('phone-a', T, 'garbage dumped by the river')
    seeded.incidentM = a.incident('phone-a', T, 'a broken street light (worked through in the role matrix)')
    seeded.c1 = c.alertOf('gas-c1', T, { enterprise: 'e-c1', severity: 'major', value: 30 })
    const readings = [a.readingOf('gas-a1', T - 1000, 55, 'e-a1'), a.readingOf('gas-a2', T - 1000, 26, 'e-a2')]
    expect((await center.ingest('gwA', [...readings, seeded.a1, seeded.a2, seeded.patrol, seeded.camera, seeded.incident, seeded.incidentM])).statusCode).toBe(200)
    expect((await center.ingest('gwC', [c.readingOf('gas-c1', T - 1000, 30, 'e-c1'), seeded.c1])).statusCode).toBe(200)
  })
  afterAll(() => center?.close())

  describe('role matrix: every route, every role', () => {
    // Expected status per caller. center = zhang (d-north), south = li (d-south).
    type Row = [method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, expected: Partial<Record<Who, number>>, body?: unknown]
    /** A fresh API token to revoke, made the way an admin would. */
    const freshToken = () => center.app.center.directory.createUserToken('zhang', 'to revoke').id
    const reads = (ok: Who[], others: number, extra: Partial<Record<Who, number>> = {}) => {
      const all: Who[] = ['admin', 'centerNorth', 'centerSouth', 'inspector', 'supervisor']
      return { ...Object.fromEntries(all.map((w) => [w, ok.includes(w) ? 200 : others])), gwA: 403, nobody: 401, ...extra }
    }
    const rows: Row[] = [
      ['GET', '/v1/alerts', reads(['admin', 'centerNorth', 'centerSouth', 'inspector', 'supervisor'], 403)],
      ['GET', '/v1/incidents', reads(['admin', 'centerNorth', 'centerSouth', 'supervisor'], 403)],
      ['GET', '/v1/series?device=gas-a1', reads(['admin', 'centerNorth', 'inspector'], 403, { centerSouth: 404 })],
      ['GET', '/v1/series?device=gas-a1&quantity=gas&window=1m', reads(['admin', 'centerNorth', 'inspector'], 403, { centerSouth: 404 })],
      ['GET', '/v1/gaps', reads(['admin', 'centerNorth', 'centerSouth'], 403)],
      ['GET', '/v1/devices', reads(['admin', 'centerNorth', 'centerSouth', 'inspector'], 403)],
      ['GET', '/v1/gateways', reads(['admin', 'centerNorth', 'centerSouth'], 403)],
      ['GET', '/v1/patrol/tours?office=o-a', reads(['admin', 'centerNorth', 'supervisor'], 403, { centerSouth: 404 })],
      ['GET', '/v1/patrol/compliance?office=o-a', reads(['admin', 'centerNorth', 'supervisor'], 403, { centerSouth: 404 })],
      ['GET', '/v1/stats/alerts', reads(['admin', 'centerNorth', 'centerSouth', 'inspector', 'supervisor'], 403)],
      ['GET', '/v1/me', reads(['admin', 'centerNorth', 'centerSouth', 'inspector', 'supervisor'], 403)],
      ['GET', '/v1/admin/users', reads(['admin'], 403)],
      ['GET', '/v1/admin/tokens', reads(['admin'], 403)],
      ['GET', '/v1/admin/gateways', reads(['admin'], 403)],
      ['GET', '/v1/alerts/{a2}', reads(['admin', 'centerNorth'], 403, { centerSouth: 404, inspector: 404, supervisor: 404 })],
      ['GET', '/v1/alerts/{patrol}', reads(['admin', 'centerNorth', 'supervisor'], 403, { centerSouth: 404, inspector: 404 })],
      ['GET', '/v1/incidents/{incidentM}', reads(['admin', 'centerNorth', 'supervisor'], 403, { centerSouth: 404 })],
      // Acting: only center staff of the alert's district; everyone else 403, or 404 out of scope.
      // Each row is one step of the lifecycle, so the center's call succeeds and the others are judged first.
      ...(['acknowledge', 'assign', 'resolve', 'close'] as const).flatMap((step): Row[] => [
        ['POST', `/v1/alerts/{camera}/${step}`, { admin: 403, inspector: 403, supervisor: 403, centerSouth: 404, gwA: 403, nobody: 401, centerNorth: 200 }, step === 'assign' ? { department: 'police' } : {}],
        ['POST', `/v1/incidents/{incidentM}/${step}`, { admin: 403, inspector: 403, supervisor: 403, centerSouth: 404, gwA: 403, nobody: 401, centerNorth: 200 }, step === 'assign' ? { department: 'city-management' } : {}],
      ]),
      ['POST', '/v1/admin/users', { centerNorth: 403, inspector: 403, supervisor: 403, gwA: 403, nobody: 401, admin: 201 }, { name: 'matrix-user', role: 'supervisor', scope: { offices: ['o-b'] } }],
      ['PUT', '/v1/admin/users/matrix-user/password', { centerNorth: 403, inspector: 403, supervisor: 403, gwA: 403, nobody: 401, admin: 204 }, { password: 'matrix password 1' }],
      ['POST', '/v1/admin/users/matrix-user/tokens', { centerNorth: 403, inspector: 403, supervisor: 403, gwA: 403, nobody: 401, admin: 201 }, { label: 'matrix' }],
      ['DELETE', '/v1/admin/tokens/{token}', { centerNorth: 403, inspector: 403, supervisor: 403, gwA: 403, nobody: 401, admin: 204 }],
      ['DELETE', '/v1/admin/users/matrix-user', { centerNorth: 403, inspector: 403, supervisor: 403, gwA: 403, nobody: 401, admin: 204 }],
      ['POST', '/v1/admin/gateways', { centerNorth: 403, inspector: 403, supervisor: 403, gwA: 403, nobody: 401, admin: 201 }, { id: 'gw-matrix', office: 'o-b' }],
      ['POST', '/v1/admin/gateways/gw-matrix/token', { centerNorth: 403, inspector: 403, supervisor: 403, gwA: 403, nobody: 401, admin: 201 }],
      ['DELETE', '/v1/admin/gateways/gw-matrix', { centerNorth: 403, inspector: 403, supervisor: 403, gwA: 403, nobody: 401, admin: 204 }],
      ['DELETE', '/v1/session', { gwA: 403, nobody: 401 }],
      ['POST', '/v1/ingest', { admin: 403, centerNorth: 403, inspector: 403, supervisor: 403, nobody: 401, gwA: 200 }, { envelopes: [] }],
    ]
    for (const [method, url, expected, body] of rows) {
      it(`${method} ${url}`, async () => {
        // Callers that would succeed go last, so a refused caller is judged on a fresh resource.
        const order = (Object.keys(expected) as Who[]).sort((x, y) => Number(expected[x]! < 300) - Number(expected[y]! < 300))
        for (const who of order) {
          const path = url.replace(/\{(\w+)\}/, (_, k: string) =>
            k === 'token' ? freshToken() : seeded[k].kind === 'incident' ? (seeded[k] as Envelope & { kind: 'incident' }).payload.incidentId : (seeded[k] as Envelope & { kind: 'alert' }).payload.alertId,
          )
          let payload = body
          if (url === '/v1/ingest') payload = { envelopes: [a.readingOf('gas-a1', T, 1, 'e-a1')] }
          const res = await center.as(who, method, path, payload)
          expect({ who, status: res.statusCode }).toEqual({ who, status: expected[who] })
          if (res.statusCode >= 400) expect(res.json()).toMatchObject({ statusCode: res.statusCode, code: expect.stringMatching(/^CLOUD_/) })
          if (res.statusCode === 401) expect(res.headers['www-authenticate']).toBe('Bearer')
        }
      })
    }
  })

  describe('scope: each role sees its own share and nothing else', () => {
    it('alerts', async () => {
      const list = async (who: Who) => ids(await center.as(who, 'GET', '/v1/alerts'))
      const id = (k: string) => (seeded[k] as Envelope & { kind: 'alert' }).payload.alertId
      expect(await list('admin')).toEqual([id('a1'), id('a2'), id('patrol'), id('camera'), id('c1')].sort())
      expect(await list('centerNorth')).toEqual([id('a1'), id('a2'), id('patrol'), id('camera')].sort())
      expect(await list('centerSouth')).toEqual([id('c1')])
      expect(await list('inspector')).toEqual([id('a1')])
      expect(await list('supervisor')).toEqual([id('patrol')])
    })

    it('incidents, devices, gateways and single alerts', async () => {
      expect(ids(await center.as('supervisor', 'GET', '/v1/incidents'), 'incidents')).toHaveLength(2)
      expect(ids(await center.as('centerSouth', 'GET', '/v1/incidents'), 'incidents')).toEqual([])
      const devices = (who: Who) => center.as(who, 'GET', '/v1/devices').then((r) => r.json<{ devices: { id: string }[] }>().devices.map((d) => d.id))
      expect(await devices('inspector')).toEqual(['gas-a1'])
      expect(await devices('centerSouth')).toEqual(['gas-c1'])
      const gateways = await center.as('centerSouth', 'GET', '/v1/gateways')
      expect(gateways.json<{ gateways: { id: string }[] }>().gateways.map((g) => g.id)).toEqual(['gw-c'])
      const c1 = (seeded.c1 as Envelope & { kind: 'alert' }).payload.alertId
      expect((await center.as('centerNorth', 'GET', `/v1/alerts/${c1}`)).statusCode).toBe(404)
      expect((await center.as('centerSouth', 'GET', `/v1/alerts/${c1}`)).statusCode).toBe(200)
    })

    it('a sensor moved between enterprises: each inspector sees only the readings taken while it was theirs', async () => {
      const base = Date.UTC(2026, 10, 20, 0, 0)
      // gas-mv is e-a1's (the inspector's), then moves to e-a2; gas-in moves the other way.
      const early = a.alertOf('gas-mv', base + 30_000, { enterprise: 'e-a1', value: 2 })
      await center.ingest('gwA', [a.readingOf('gas-mv', base, 1, 'e-a1'), a.readingOf('gas-mv', base + 30_000, 2, 'e-a1'), early])
      await center.ingest('gwA', [a.readingOf('gas-mv', base + 60_000, 3, 'e-a2'), a.readingOf('gas-mv', base + 90_000, 4, 'e-a2')])
      await center.ingest('gwA', [a.readingOf('gas-in', base, 5, 'e-a2'), a.readingOf('gas-in', base + 60_000, 6, 'e-a1')])
      const range = `from=${base}&to=${base + 120_000}`
      type Raw = { enterprise?: string; points: { value: number }[] }
      const raw = async (who: Who, device: string) => {
        const res = await center.as(who, 'GET', `/v1/series?device=${device}&${range}`)
        expect(res.statusCode).toBe(200)
        const body = res.json<Raw>()
        return { enterprise: body.enterprise, values: body.points.map((p) => p.value) }
      }
      // The former owner's inspector: the readings from before the move, and not where it went.
      expect(await raw('inspector', 'gas-mv')).toEqual({ enterprise: undefined, values: [1, 2] })
      expect(await raw('centerNorth', 'gas-mv')).toEqual({ enterprise: 'e-a2', values: [1, 2, 3, 4] })
      // The new owner's inspector: from the move on.
      expect(await raw('inspector', 'gas-in')).toEqual({ enterprise: 'e-a1', values: [6] })
      const windows = await center.as('inspector', 'GET', `/v1/series?device=gas-mv&quantity=gas&window=1m&${range}`)
      expect(windows.json<{ buckets: { mean: number; count: number }[] }>().buckets.map((b) => [b.mean, b.count])).toEqual([[1.5, 2]])
      // The alert raised while it was e-a1's: its chart shows only e-a1's readings to the inspector.
      const alert = `/v1/alerts/${(early as Envelope & { kind: 'alert' }).payload.alertId}`
      const chart = async (who: Who) => (await center.as(who, 'GET', alert)).json<{ readings: { value: number }[] }>().readings.map((r) => r.value)
      expect(await chart('inspector')).toEqual([1, 2])
      expect(await chart('centerNorth')).toEqual([1, 2, 3, 4])
      // The device list: the former owner's inspector finds it as it left them.
      type Listed = { id: string; enterprise?: string; movedAway?: boolean; status?: string; latest: Record<string, { value: number }> }
      const listed = async (who: Who, id: string) => (await center.as(who, 'GET', '/v1/devices')).json<{ devices: Listed[] }>().devices.find((d) => d.id === id)
      expect(await listed('inspector', 'gas-mv')).toMatchObject({ enterprise: 'e-a1', movedAway: true, latest: { gas: { value: 2 } } })
      expect(await listed('centerNorth', 'gas-mv')).toMatchObject({ enterprise: 'e-a2', latest: { gas: { value: 4 } } })
      expect((await listed('centerNorth', 'gas-mv'))?.movedAway).toBeUndefined()
      expect(await listed('inspector', 'gas-in')).toMatchObject({ enterprise: 'e-a1', latest: { gas: { value: 6 } } })
      expect((await listed('inspector', 'gas-in'))?.movedAway).toBeUndefined()
    })

    it('a device id used in two offices: each caller gets their own office\'s readings; an admin must say which', async () => {
      await center.ingest('gwA', [a.readingOf('gas-x', T, 1, 'e-a1')])
      await center.ingest('gwC', [c.readingOf('gas-x', T, 99, 'e-c1')])
      const values = async (who: Who, query = '') =>
        (await center.as(who, 'GET', `/v1/series?device=gas-x&from=${T}&to=${T}${query}`)).json<{ office: string; points: { value: number }[] }>()
      expect(await values('centerNorth')).toMatchObject({ office: 'o-a', points: [{ value: 1 }] })
      expect(await values('centerSouth')).toMatchObject({ office: 'o-c', points: [{ value: 99 }] })
      expect(await values('admin')).toMatchObject({ statusCode: 400, problems: [{ path: '/office', message: 'say which: o-a, o-c' }] })
      expect(await values('admin', '&office=o-c')).toMatchObject({ office: 'o-c', points: [{ value: 99 }] })
      expect((await center.as('centerNorth', 'GET', `/v1/series?device=gas-x&office=o-c`)).statusCode).toBe(404)
      // Open alerts are counted per office and device too.
      await center.ingest('gwC', [c.alertOf('gas-x', T, { enterprise: 'e-c1', value: 30 })])
      const openOf = async (who: Who) =>
        (await center.as(who, 'GET', '/v1/devices')).json<{ devices: { id: string; office: string; openAlerts: number }[] }>().devices.filter((d) => d.id === 'gas-x').map((d) => [d.office, d.openAlerts])
      expect(await openOf('centerNorth')).toEqual([['o-a', 0]])
      expect(await openOf('centerSouth')).toEqual([['o-c', 1]])
    })

    it('gaps: the limit counts only what the caller may see', async () => {
      const gap = (f: FieldFactory, device: string, ts: number) =>
        f.stamp({ gateway: f.gateway, office: f.office, device, ts, kind: 'gap', payload: { class: 'telemetry', reason: 'quota', from: ts - 1000, to: ts, count: 10, kinds: ['reading'] } })
      await center.ingest('gwC', Array.from({ length: 5 }, (_, i) => gap(c, 'gas-c1', T + i)))
      await center.ingest('gwA', [gap(a, 'gas-a1', T + 10)])
      const res = await center.as('centerNorth', 'GET', `/v1/gaps?limit=3&from=${T - 1}&to=${T + 100}`)
      expect(res.json<{ gaps: { office: string }[] }>().gaps.map((g) => g.office)).toEqual(['o-a'])
    })

    it('the office filter cannot widen a scope', async () => {
      expect(ids(await center.as('centerSouth', 'GET', '/v1/alerts?office=o-a'))).toEqual([])
    })
  })

  describe('lifecycle', () => {
    const alertId = () => (seeded.a1 as Envelope & { kind: 'alert' }).payload.alertId
    const act = (who: Who, action: string, body: object = {}) => center.as(who, 'POST', `/v1/alerts/${alertId()}/${action}`, body)

    it('raised → acknowledged → assigned → resolved → closed, each recorded with actor, time and note', async () => {
      expect((await act('centerNorth', 'resolve')).json()).toMatchObject({ statusCode: 409, message: expect.stringContaining('acknowledge it before') })
      center.clock.now = T + 2 * 60_000
      expect((await act('centerNorth', 'acknowledge', { note: '收到，正在联系企业' })).json()).toMatchObject({ alert: { state: 'acknowledged', acknowledgedBy: 'zhang' } })
      const bad = await act('centerNorth', 'assign', { department: 'plumbers' })
      expect(bad.statusCode).toBe(400)
      expect(bad.json()).toMatchObject({ problems: [{ path: '/department' }] })
      expect((await act('centerNorth', 'assign', {})).statusCode).toBe(400)
      center.clock.now = T + 3 * 60_000
      expect((await act('centerNorth', 'assign', { department: 'work-safety', note: 'send the inspector' })).json()).toMatchObject({ alert: { state: 'assigned', assignedTo: 'work-safety' } })
      center.clock.now = T + 30 * 60_000
      expect((await act('centerNorth', 'resolve', { note: 'valve replaced' })).json()).toMatchObject({ alert: { state: 'resolved' } })
      expect((await act('centerNorth', 'close')).json()).toMatchObject({ alert: { state: 'closed' } })
      expect((await act('centerNorth', 'close')).statusCode).toBe(409)

      const detail = (await center.as('centerNorth', 'GET', `/v1/alerts/${alertId()}`)).json<{ history: { action: string; actor: string; note?: string; department?: string; at: string }[]; readings: { value: number }[] }>()
      expect(detail.history.map((h) => [h.action, h.actor, h.note ?? null, h.department ?? null])).toEqual([
        ['raised', 'gateway:gw-a', null, null],
        ['acknowledged', 'zhang', '收到，正在联系企业', null],
        ['assigned', 'zhang', 'send the inspector', 'work-safety'],
        ['resolved', 'zhang', 'valve replaced', null],
        ['closed', 'zhang', null, null],
      ])
      expect(detail.history[1].at).toBe(new Date(T + 2 * 60_000).toISOString())
      // 55 before the alert, and the 1 the role matrix ingested at the same time.
      expect(detail.readings.map((r) => r.value)).toEqual([55, 1])

      // The audit trail is also in the time-series store.
      const trail = await waitFor(async () => {
        const rows = await center.store.lifecycle({ subjectId: alertId(), from: T - 1, to: T + 3_600_000, limit: 100 })
        return rows.length === 5 ? rows : undefined
      }, { what: 'five transitions in the event store' })
      expect(trail.map((r) => [r.action, r.actor, r.state])).toEqual([
        ['raised', 'gateway:gw-a', 'raised'],
        ['acknowledged', 'zhang', 'acknowledged'],
        ['assigned', 'zhang', 'assigned'],
        ['resolved', 'zhang', 'resolved'],
        ['closed', 'zhang', 'closed'],
      ])
    })

    it('two staff acknowledging at once: one acknowledgement, and a clear 409 for the other', async () => {
      const id = (seeded.a2 as Envelope & { kind: 'alert' }).payload.alertId
      const [x, y] = await Promise.all([
        center.as('centerNorth', 'POST', `/v1/alerts/${id}/acknowledge`, { note: 'mine' }),
        center.as('centerNorth2', 'POST', `/v1/alerts/${id}/acknowledge`, { note: 'mine too' }),
      ])
      expect([x.statusCode, y.statusCode].sort()).toEqual([200, 409])
      const loser = x.statusCode === 409 ? x : y
      const winner = x.statusCode === 200 ? x : y
      const by = winner.json<{ alert: CaseJson }>().alert.acknowledgedBy
      expect(loser.json()).toMatchObject({ code: 'CLOUD_CONFLICT', message: expect.stringContaining(`already acknowledged by ${by}`) })
      const history = (await center.as('admin', 'GET', `/v1/alerts/${id}`)).json<{ history: { action: string }[] }>().history
      expect(history.filter((h) => h.action === 'acknowledged')).toHaveLength(1)
    })

    it('a stale version is refused with 409 rather than overwriting a colleague', async () => {
      const id = (seeded.a2 as Envelope & { kind: 'alert' }).payload.alertId
      const current = (await center.as('centerNorth', 'GET', `/v1/alerts/${id}`)).json<{ alert: CaseJson }>().alert
      const stale = await center.as('centerNorth', 'POST', `/v1/alerts/${id}/assign`, { department: 'fire', version: current.version - 1 })
      expect(stale.statusCode).toBe(409)
      expect((await center.as('centerNorth', 'POST', `/v1/alerts/${id}/assign`, { department: 'fire', version: current.version })).statusCode).toBe(200)
    })

    it('a gateway clear shows on the alert but does not resolve it; a replay changes nothing', async () => {
      const raise = c.alertOf('gas-c1', T + 1000, { enterprise: 'e-c1', severity: 'major', value: 31 })
      const id = (raise as Envelope & { kind: 'alert' }).payload.alertId
      const clear = c.alertOf('gas-c1', T + 9000, { enterprise: 'e-c1', alertId: id, state: 'cleared', value: 3 })
      expect((await center.ingest('gwC', [raise, clear])).statusCode).toBe(200)
      expect((await center.ingest('gwC', [raise, clear])).statusCode).toBe(200)
      const detail = (await center.as('centerSouth', 'GET', `/v1/alerts/${id}`)).json<{ alert: CaseJson; history: { action: string }[] }>()
      expect(detail.alert).toMatchObject({ state: 'raised', clearedAt: new Date(T + 9000).toISOString(), detail: { events: 2 } })
      expect(detail.history.map((h) => h.action)).toEqual(['raised', 'cleared'])
    })

    it('incidents from patrol staff follow the same lifecycle', async () => {
      const id = (seeded.incident as Envelope & { kind: 'incident' }).payload.incidentId
      expect((await center.as('centerNorth', 'POST', `/v1/incidents/${id}/acknowledge`, {})).statusCode).toBe(200)
      expect((await center.as('centerNorth', 'POST', `/v1/incidents/${id}/assign`, { department: 'city-management' })).json()).toMatchObject({ incident: { state: 'assigned' } })
      expect((await center.as('centerNorth', 'POST', `/v1/incidents/${id}/resolve`, { note: 'cleaned up' })).json()).toMatchObject({ incident: { state: 'resolved' } })
      const detail = (await center.as('supervisor', 'GET', `/v1/incidents/${id}`)).json<{ incident: CaseJson; history: { action: string }[]; mayAct: boolean }>()
      expect(detail.incident).toMatchObject({ type: 'incident.dumping', detail: { description: 'garbage dumped by the river', reporter: 'staff-1' } })
      expect(detail.history.map((h) => h.action)).toEqual(['raised', 'acknowledged', 'assigned', 'resolved'])
      expect(detail.mayAct).toBe(false)
      expect((await center.as('supervisor', 'POST', `/v1/incidents/${id}/close`, {})).statusCode).toBe(403)
    })
  })

  describe('escalation by SLA', () => {
    it('an unacknowledged alert escalates one level per SLA period; an acknowledged one does not', async () => {
      const raisedAt = center.clock.now
      const critical = a.alertOf('gas-a1', raisedAt, { enterprise: 'e-a1', severity: 'critical', value: 60 })
      const minor = a.alertOf('gas-a2', raisedAt, { enterprise: 'e-a2', severity: 'minor', value: 26 })
      const acked = a.alertOf('cam-a', raisedAt, { type: 'camera.intrusion', severity: 'critical' })
      expect((await center.ingest('gwA', [critical, minor, acked])).statusCode).toBe(200)
      const idOf = (e: Envelope) => (e as Envelope & { kind: 'alert' }).payload.alertId
      expect((await center.as('centerNorth', 'POST', `/v1/alerts/${idOf(acked)}/acknowledge`, {})).statusCode).toBe(200)

      const get = async (e: Envelope) => (await center.as('admin', 'GET', `/v1/alerts/${idOf(e)}`)).json<{ alert: CaseJson; history: { action: string; actor: string; level?: string }[] }>()
      center.clock.now = raisedAt + 4 * 60_000
      center.app.center.casebook.escalateDue()
      expect((await get(critical)).alert).toMatchObject({ level: 'grid', escalations: 0 })

      center.clock.now = raisedAt + 5 * 60_000 + 1 // critical SLA: 5 min
      center.app.center.casebook.escalateDue()
      expect((await get(critical)).alert).toMatchObject({ level: 'community', escalations: 1 })
      expect((await get(minor)).alert).toMatchObject({ level: 'grid', escalations: 0 })
      expect((await get(acked)).alert).toMatchObject({ level: 'grid', escalations: 0 })

      center.clock.now = raisedAt + 10 * 60_000 + 2
      center.app.center.casebook.escalateDue()
      const twice = await get(critical)
      expect(twice.alert).toMatchObject({ level: 'street', escalations: 2 })
      expect(twice.history.filter((h) => h.action === 'escalated').map((h) => [h.actor, h.level])).toEqual([
        ['system', 'community'],
        ['system', 'street'],
      ])
      // Escalating again at the same time does nothing: the SLA clock restarted.
      expect(center.app.center.casebook.escalateDue().map((x) => x.id)).not.toContain(idOf(critical))

      // District is the top: reached once, and then no deadline is left to pass.
      center.clock.now = raisedAt + 15 * 60_000 + 3
      center.app.center.casebook.escalateDue()
      expect((await get(critical)).alert).toMatchObject({ level: 'district', escalations: 3 })
      expect((await get(critical)).alert).not.toHaveProperty('ackDueAt')
      center.clock.now = raisedAt + 60 * 60_000
      expect(center.app.center.casebook.escalateDue().map((x) => x.id)).not.toContain(idOf(critical))
      expect((await get(critical)).alert).toMatchObject({ level: 'district', escalations: 3 })
    })

    it('an alert that turns critical while unacknowledged takes the critical SLA from when it arrived', async () => {
      const arrived = center.clock.now
      const minor = a.alertOf('gas-a2', arrived, { enterprise: 'e-a2', severity: 'minor', value: 26 })
      const id = (minor as Envelope & { kind: 'alert' }).payload.alertId
      await center.ingest('gwA', [minor])
      const due = (await center.as('admin', 'GET', `/v1/alerts/${id}`)).json<{ alert: { ackDueAt: string } }>().alert.ackDueAt
      expect(Date.parse(due)).toBe(arrived + 60 * 60_000)
      await center.ingest('gwA', [a.alertOf('gas-a2', arrived + 1000, { enterprise: 'e-a2', severity: 'critical', alertId: id, state: 'updated', value: 60 })])
      const after = (await center.as('admin', 'GET', `/v1/alerts/${id}`)).json<{ alert: { ackDueAt: string; severity: string } }>().alert
      expect(after).toMatchObject({ severity: 'critical', ackDueAt: new Date(arrived + 5 * 60_000).toISOString() })
      center.clock.now = arrived + 5 * 60_000 + 1
      expect(center.app.center.casebook.escalateDue().map((x) => x.id)).toContain(id)
    })
  })

  describe('no office can touch another office\'s alerts', () => {
    it('ingest refuses an alert or incident event naming another gateway\'s alert, and nothing of the batch is stored', async () => {
      const victim = (seeded.patrol as Envelope & { kind: 'alert' }).payload.alertId
      const before = (await center.as('admin', 'GET', `/v1/alerts/${victim}`)).json<{ alert: CaseJson }>().alert
      const forged = c.alertOf('gas-c1', T + 5000, { enterprise: 'e-c1', alertId: victim, state: 'cleared', severity: 'critical' })
      const res = await center.ingest('gwC', [c.readingOf('gas-c1', T + 5000, 1, 'e-c1'), forged])
      expect(res.statusCode).toBe(403)
      expect(res.json()).toMatchObject({ code: 'CLOUD_FORBIDDEN', problems: [{ path: '/envelopes/1/payload/alertId' }] })
      const after = (await center.as('admin', 'GET', `/v1/alerts/${victim}`)).json<{ alert: CaseJson }>().alert
      expect(after).toEqual(before)
    })

    it('and the casebook itself ignores a gateway event for a case it does not own', async () => {
      const victim = (seeded.patrol as Envelope & { kind: 'alert' }).payload.alertId
      const before = center.app.center.casebook.get(victim)
      const forged = c.alertOf('gas-c1', T + 6000, { alertId: victim, state: 'updated', severity: 'critical' })
      center.app.center.casebook.applyEnvelopes([forged])
      expect(center.app.center.casebook.get(victim)).toEqual(before)
    })
  })

  describe('sign-in and administration', () => {
    it('a user made by an admin signs in, sees their scope, signs out', async () => {
      const made = await center.as('admin', 'POST', '/v1/admin/users', { name: 'chen', role: 'supervisor', scope: { offices: ['o-b'] }, password: 'a long enough password' })
      expect(made.statusCode).toBe(201)
      expect(JSON.stringify(made.json())).not.toContain('a long enough password')
      expect((await center.as('nobody', 'POST', '/v1/session', { name: 'chen', password: 'wrong password!' })).statusCode).toBe(401)
      expect((await center.as('nobody', 'POST', '/v1/session', { name: 'nobody-here', password: 'wrong password!' })).statusCode).toBe(401)
      const session = await center.as('nobody', 'POST', '/v1/session', { name: 'chen', password: 'a long enough password' })
      expect(session.statusCode).toBe(200)
      const token = session.json<{ token: string }>().token
      const me = await center.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${token}` } })
      expect(me.json()).toMatchObject({ name: 'chen', role: 'supervisor', offices: ['o-b'] })
      expect((await center.app.inject({ method: 'DELETE', url: '/v1/session', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(204)
      expect((await center.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(401)
    })

    it('sessions expire', async () => {
      await center.as('admin', 'POST', '/v1/admin/users', { name: 'zhou', role: 'center', scope: { district: 'd-south' }, password: 'another long password' })
      const token = (await center.as('nobody', 'POST', '/v1/session', { name: 'zhou', password: 'another long password' })).json<{ token: string }>().token
      expect((await center.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(200)
      const before = center.clock.now
      center.clock.now = before + 12 * 3_600_000 + 1
      try {
        expect((await center.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(401)
      } finally {
        center.clock.now = before
      }
    })

    it('sign-out is for sessions: an API token gets 400 and keeps working until an admin revokes it', async () => {
      const made = (await center.as('admin', 'POST', '/v1/admin/users/zhang/tokens', { label: 'wallboard', ttlHours: 0.3333333 })).json<{ id: string; token: string }>()
      expect(made.token).toEqual(expect.any(String))
      const auth = { authorization: `Bearer ${made.token}` }
      expect((await center.app.inject({ method: 'DELETE', url: '/v1/session', headers: auth })).statusCode).toBe(400)
      expect((await center.app.inject({ url: '/v1/me', headers: auth })).statusCode).toBe(200)
      expect((await center.as('admin', 'DELETE', `/v1/admin/tokens/${made.id}`)).statusCode).toBe(204)
      expect((await center.app.inject({ url: '/v1/me', headers: auth })).statusCode).toBe(401)
    })

    it('a bad scope is refused with the path; a taken name with 409', async () => {
      const bad = await center.as('admin', 'POST', '/v1/admin/users', { name: 'x1', role: 'center', scope: { district: 'nowhere' } })
      expect(bad.json()).toMatchObject({ statusCode: 400, problems: [{ path: '/scope/district' }] })
      expect((await center.as('admin', 'POST', '/v1/admin/users', { name: 'zhang', role: 'admin', scope: {} })).statusCode).toBe(409)
    })

    it('a gateway registered by an admin ingests with its token; rotating the token retires the old one', async () => {
      const made = await center.as('admin', 'POST', '/v1/admin/gateways', { id: 'gw-b', office: 'o-b' })
      expect(made.statusCode).toBe(201)
      const token = made.json<{ token: string }>().token
      const b = new FieldFactory('gw-b', 'o-b')
      const send = (t: string) => center.app.inject({ method: 'POST', url: '/v1/ingest', headers: { authorization: `Bearer ${t}` }, payload: { envelopes: [b.readingOf('gas-b1', T, 3, 'e-b1')] } })
      expect((await send(token)).statusCode).toBe(200)
      const rotated = (await center.as('admin', 'POST', '/v1/admin/gateways/gw-b/token')).json<{ token: string }>().token
      expect((await send(token)).statusCode).toBe(401)
      expect((await send(rotated)).statusCode).toBe(200)
      const listed = (await center.as('admin', 'GET', '/v1/admin/tokens')).body
      expect(listed).not.toContain(rotated)
      expect((await center.as('admin', 'DELETE', '/v1/admin/gateways/gw-b')).statusCode).toBe(204)
      expect((await send(rotated)).statusCode).toBe(401)
      expect((await center.as('admin', 'DELETE', '/v1/admin/gateways/gw-a')).statusCode).toBe(409)
    })
  })

  describe('gateway health, patrol compliance, statistics', () => {
    it('a gateway reports its version and backlog; the center shows last seen and link state', async () => {
      const at = center.clock.now
      expect((await center.ingest('gwA', [a.readingOf('gas-a1', at, 2, 'e-a1')], { 'x-gridwatch-version': '0.3.1', 'x-gridwatch-backlog': '4200' })).statusCode).toBe(200)
      const g = (await center.as('centerNorth', 'GET', '/v1/gateways')).json<{ gateways: Record<string, unknown>[] }>().gateways.find((x) => x.id === 'gw-a')
      expect(g).toMatchObject({ office: 'o-a', link: 'up', version: '0.3.1', backlog: 4200, lastSeen: new Date(at).toISOString() })
      center.clock.now = at + 3 * 60_000
      try {
        const later = (await center.as('centerNorth', 'GET', '/v1/gateways')).json<{ gateways: Record<string, unknown>[] }>().gateways.find((x) => x.id === 'gw-a')
        expect(later).toMatchObject({ link: 'down', secondsSinceSeen: 180 })
      } finally {
        center.clock.now = at
      }
    })

    it('patrol compliance per route, staff and day, from scans against the route', async () => {
      const day = (d: number, h: number, m: number) => Date.UTC(2026, 10, d, h - 8, m)
      const scan = (ts: number, cp: string, staff: string) => {
        const e = a.scan('phone-s', ts, `tag-${cp}`, cp)
        return e.kind === 'scan' ? { ...e, payload: { ...e.payload, staff } } : e
      }
      await center.ingest('gwA', [
        scan(day(10, 8, 5), 'cp-1', 's-1'),
        scan(day(10, 8, 40), 'cp-2', 's-1'), // 10th: completed
        scan(day(11, 8, 15), 'cp-1', 's-1'), // 11th: incomplete (cp-2 missed)
        scan(day(13, 8, 20), 'cp-1', 's-2'),
        scan(day(13, 9, 5), 'cp-2', 's-2'), // 13th: late (after 09:00, within grace), by someone else
      ])
      const saved = center.clock.now
      center.clock.now = day(14, 12, 0)
      try {
        const res = await center.as('supervisor', 'GET', '/v1/patrol/compliance?office=o-a&from=2026-11-10&to=2026-11-13')
        expect(res.statusCode).toBe(200)
        const office = res.json<{ offices: { byRoute: Record<string, unknown>[]; byStaff: Record<string, unknown>[] }[] }>().offices[0]
        expect(office.byRoute.map((r) => [r.day, r.completed, r.late, r.incomplete, r.missed, r.compliance])).toEqual([
          ['2026-11-10', 1, 0, 0, 0, 1],
          ['2026-11-11', 0, 0, 1, 0, 0],
          ['2026-11-12', 0, 0, 0, 1, 0],
          ['2026-11-13', 0, 1, 0, 0, 1],
        ])
        expect(office.byStaff.filter((r) => r.key === 's-2').map((r) => [r.day, r.late])).toEqual([['2026-11-13', 1]])
        const tours = (await center.as('centerNorth', 'GET', '/v1/patrol/tours?office=o-a&day=2026-11-11')).json<{ tours: { status: string; missed: string[]; checkpoints: { checkpoint: string; staff?: string }[] }[] }>().tours
        expect(tours).toEqual([expect.objectContaining({ status: 'incomplete', missed: ['cp-2'] })])
        expect((await center.as('supervisor', 'GET', '/v1/patrol/compliance?office=o-a&from=2026-10-01&to=2026-11-13')).statusCode).toBe(400)
        expect((await center.as('supervisor', 'GET', '/v1/patrol/tours?office=o-a&day=2026-13-45')).json()).toMatchObject({ statusCode: 400, problems: [{ path: '/day' }] })
        expect((await center.as('supervisor', 'GET', '/v1/patrol/compliance?office=o-a&from=2026-02-30&to=2026-03-01')).json()).toMatchObject({ statusCode: 400, problems: [{ path: '/from' }] })
      } finally {
        center.clock.now = saved
      }
    })

    it('alert statistics: counts per type, office and day; time to acknowledge and to resolve', async () => {
      const res = await center.as('centerNorth', 'GET', `/v1/stats/alerts?from=${T - 1}&to=${T + 1}`)
      const stats = res.json<{ total: number; byType: Record<string, number>; byOffice: Record<string, number>; byDay: Record<string, number>; timeToAcknowledge: { count: number; medianSeconds: number }; timeToResolve: { count: number; meanSeconds: number } }>()
      expect(stats.byOffice).toEqual({ 'o-a': 4 })
      expect(stats.byType).toEqual({ 'sensor.threshold': 2, 'patrol.checkpoint_missed': 1, 'camera.intrusion': 1 })
      expect(stats.byDay).toEqual({ '2026-11-20': 4 })
      // a1 resolved 30 min after it was raised; the camera alert 1 min after (in the role matrix).
      expect(stats.timeToResolve).toMatchObject({ count: 2, meanSeconds: 930, medianSeconds: 60 })
      expect(stats.timeToAcknowledge.count).toBeGreaterThanOrEqual(2)
    })

    it('a windowed series: mean, min and max per minute', async () => {
      const base = Date.UTC(2026, 10, 20, 2, 0)
      await center.ingest('gwA', [10, 20, 30].map((v, i) => a.readingOf('gas-a1', base + i * 10_000, v, 'e-a1')).concat([a.readingOf('gas-a1', base + 60_000, 7, 'e-a1')]))
      const res = await center.as('inspector', 'GET', `/v1/series?device=gas-a1&quantity=gas&window=1m&from=${base}&to=${base + 119_999}`)
      expect(res.json<{ buckets: unknown[] }>().buckets).toEqual([
        { time: new Date(base).toISOString(), mean: 20, min: 10, max: 30, count: 3 },
        { time: new Date(base + 60_000).toISOString(), mean: 7, min: 7, max: 7, count: 1 },
      ])
      expect((await center.as('inspector', 'GET', `/v1/series?device=gas-a1&window=1m`)).json()).toMatchObject({ statusCode: 400, problems: [{ path: '/quantity' }] })
    })
  })

  describe('operation', () => {
    it('OpenAPI documentation at /docs, generated from the route schemas', async () => {
      const spec = (await center.app.inject({ url: '/docs/json' })).json<{ openapi: string; paths: Record<string, Record<string, { parameters?: { name: string }[] }>> }>()
      expect(spec.openapi).toMatch(/^3\./)
      expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(['/v1/ingest', '/v1/alerts', '/v1/alerts/{id}/acknowledge', '/v1/stream', '/v1/patrol/compliance', '/v1/admin/users']))
      expect(spec.paths['/v1/alerts'].get.parameters!.map((p) => p.name)).toEqual(expect.arrayContaining(['state', 'severity', 'office']))
      expect([200, 302]).toContain((await center.app.inject({ url: '/docs' })).statusCode)
    })

    it('/health, /ready and /metrics', async () => {
      expect((await center.app.inject({ url: '/health' })).statusCode).toBe(200)
      expect((await center.app.inject({ url: '/ready' })).json()).toMatchObject({ ready: true })
      const metrics = (await center.app.inject({ url: '/metrics' })).body
      expect(metrics).toMatch(/cloud_lifecycle_transitions_total\{kind="alert",action="acknowledge"\} [1-9]/)
      expect(metrics).toMatch(/cloud_audit_pending \d+/)
    })
  })
})

describe('center API limits', () => {
  it('429 with Retry-After once a gateway passes its ingest rate; other gateways are unaffected', async () => {
    const center = await startCenter({ overrides: { limits: { ingestPerGatewayPerMinute: 2, requestsPerAddressPerMinute: 0, maxEventLoopDelayMs: 0, maxHeapUsedMb: 0 } } })
    try {
      const f = new FieldFactory('gw-a', 'o-a')
      const statuses = []
      for (let i = 0; i < 3; i++) statuses.push((await center.ingest('gwA', [f.readingOf('gas-a1', T + i, i, 'e-a1')])).statusCode)
      expect(statuses).toEqual([200, 200, 429])
      const limited = await center.ingest('gwA', [f.readingOf('gas-a1', T + 9, 9, 'e-a1')])
      expect(limited.json()).toMatchObject({ statusCode: 429, code: 'CLOUD_RATE_LIMITED' })
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0)
      expect((await center.ingest('gwC', [new FieldFactory('gw-c', 'o-c').readingOf('gas-c1', T, 1, 'e-c1')])).statusCode).toBe(200)
      expect((await center.app.inject({ url: '/metrics' })).body).toMatch(/cloud_rate_limited_total\{route="\/v1\/ingest"\} [1-9]/)
    } finally {
      await center.close()
    }
  })

  it('under pressure, requests are shed with 503 and Retry-After; liveness and metrics still answer', async () => {
    // A heap limit of 1 MB is always exceeded: the first memory sample puts the API under pressure.
    const center = await startCenter({ overrides: { limits: { ingestPerGatewayPerMinute: 0, requestsPerAddressPerMinute: 0, maxEventLoopDelayMs: 0, maxHeapUsedMb: 1 } } })
    try {
      const shed = await waitFor(async () => {
        const res = await center.as('admin', 'GET', '/v1/alerts')
        return res.statusCode === 503 ? res : undefined
      }, { what: 'the API to shed load' })
      expect(shed.json()).toMatchObject({ statusCode: 503, code: 'CLOUD_BUSY' })
      expect(shed.headers['retry-after']).toBe('5')
      expect((await center.ingest('gwA', [new FieldFactory('gw-a', 'o-a').readingOf('gas-a1', T, 1, 'e-a1')])).statusCode).toBe(503)
      expect((await center.app.inject({ url: '/healthz' })).statusCode).toBe(200)
      expect((await center.app.inject({ url: '/metrics' })).body).toMatch(/cloud_requests_shed_total\{route="\/v1\/alerts"\} [1-9]/)
    } finally {
      await center.close()
    }
  })

  it('sign-in is limited per address against password guessing', async () => {
    const center = await startCenter()
    try {
      const statuses = new Set<number>()
      for (let i = 0; i < 12; i++) statuses.add((await center.as('nobody', 'POST', '/v1/session', { name: 'zhang', password: `guess-${i}` })).statusCode)
      expect([...statuses].sort()).toEqual([401, 429])
    } finally {
      await center.close()
    }
  })

  it('logs carry the request id, route, status and who; never a token or a password', async () => {
    const lines: string[] = []
    const logger = createLogger({ service: 'cloud-api', level: 'debug', destination: { write: (s: string) => void lines.push(s) } })
    const center = await startCenter({ logger })
    try {
      await center.as('admin', 'POST', '/v1/admin/users', { name: 'he', role: 'center', scope: { district: 'd-north' }, password: 'secret password 123' })
      await center.as('nobody', 'POST', '/v1/session', { name: 'he', password: 'wrong password 456' })
      const ok = await center.as('nobody', 'POST', '/v1/session', { name: 'he', password: 'secret password 123' })
      const session = ok.json<{ token: string }>().token
      await center.app.inject({ url: '/v1/admin/users', headers: { authorization: `Bearer ${session}` } })
      await center.app.inject({ url: '/v1/me', headers: { authorization: 'Bearer some-unknown-token-value' } })
      const text = lines.join('')
      for (const secret of ['secret password 123', 'wrong password 456', session, 'some-unknown-token-value', ...Object.values(TOKENS)]) expect(text).not.toContain(secret)
      const failures = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request failed')
      expect(failures).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ reqId: expect.any(String), route: '/v1/session', status: 401, service: 'cloud-api' }),
          expect.objectContaining({ reqId: expect.any(String), route: '/v1/admin/users', status: 403 }),
        ]),
      )
      expect(lines.some((l) => l.includes('"msg":"signed in"') && l.includes('"user":"he"'))).toBe(true)
    } finally {
      await center.close()
    }
  })

  it('tokens are never in the response of a listing, and unknown tokens are 401', async () => {
    const center = await startCenter()
    try {
      const listing = (await center.as('admin', 'GET', '/v1/admin/tokens')).body
      for (const t of Object.values(TOKENS)) expect(listing).not.toContain(t)
      expect((await center.app.inject({ url: '/v1/me', headers: { authorization: 'Bearer not-a-token' } })).statusCode).toBe(401)
    } finally {
      await center.close()
    }
  })
})

describe('the audit trail when the center database is made anew', () => {
  it('keeps every transition of both lives in the event store: audit ids do not repeat', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'center-anew-'))
    const f = new FieldFactory('gw-a', 'o-a')
    const ids: string[] = []
    try {
      for (const life of ['first', 'second']) {
        // A new center database (in memory) over the same event store, as after losing center.db.
        const center = await startCenter({ store: new SqliteStore(join(dir, 'events.db')) })
        const alert = f.alertOf('gas-a1', Date.now(), { enterprise: 'e-a1', severity: 'critical' })
        const id = (alert as Envelope & { kind: 'alert' }).payload.alertId
        ids.push(id)
        expect((await center.ingest('gwA', [alert])).statusCode).toBe(200)
        expect((await center.as('centerNorth', 'POST', `/v1/alerts/${id}/acknowledge`, { note: `${life} life` })).statusCode).toBe(200)
        expect(await center.app.center.casebook.flushAudit()).toBe(2)
        await center.close()
      }
      const store = new SqliteStore(join(dir, 'events.db'))
      await store.open()
      for (const [i, id] of ids.entries()) {
        const rows = await store.lifecycle({ subjectId: id, from: 0, to: Date.now() + 60_000, limit: 10 })
        // (Sorted: the test center's clock is fixed at its start, before the alert's own time.)
        expect(rows.map((r) => [r.action, r.note ?? null]).sort(), id).toEqual([
          ['acknowledged', `${i === 0 ? 'first' : 'second'} life`],
          ['raised', null],
        ])
      }
      await store.close()
    } finally {
      removeTestDir(dir)
    }
  })
})

describe('live stream (SSE) over a real socket', () => {
  let center: TestCenter
  let url: string
  // One factory per gateway for the whole file: envelope ids must not repeat (a repeat is a replay).
  const f = new FieldFactory('gw-a', 'o-a')
  beforeAll(async () => {
    center = await startCenter()
    await center.app.listen({ host: '127.0.0.1', port: 0 })
    const address = center.app.server.address()
    url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
  })
  afterAll(() => center?.close())

  const open = async (who: Exclude<Who, 'nobody'>, query = '', lastEventId?: string) => {
    const events: SseEvent[] = []
    const stream = readSse(`${url}/v1/stream${query}`, (e) => events.push(e), { authorization: `Bearer ${TOKENS[who]}`, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) })
    await stream.opened
    return { events, stream }
  }

  it('role matrix of the stream: every user role may open it, a gateway may not', async () => {
    for (const who of ['admin', 'centerNorth', 'centerSouth', 'inspector', 'supervisor'] as const) {
      const res = await fetch(`${url}/v1/stream`, { headers: { authorization: `Bearer ${TOKENS[who]}` } })
      expect({ who, status: res.status, type: res.headers.get('content-type') }).toEqual({ who, status: 200, type: 'text/event-stream; charset=utf-8' })
      await res.body?.cancel()
    }
    expect((await fetch(`${url}/v1/stream`, { headers: { authorization: `Bearer ${TOKENS.gwA}` } })).status).toBe(403)
  })

  it('the opening says nothing of how busy other offices are', async () => {
    // A center of its own: the envelope ids below must be new to it.
    const other = await startCenter()
    try {
      await other.app.listen({ host: '127.0.0.1', port: 0 })
      const address = other.app.server.address()
      const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
      const first = async () => {
        const res = await fetch(`${base}/v1/stream`, { headers: { authorization: `Bearer ${TOKENS.inspector}` } })
        const reader = res.body!.getReader()
        const { value } = await reader.read()
        await reader.cancel()
        return new TextDecoder().decode(value)
      }
      const before = await first()
      const south = new FieldFactory('gw-c', 'o-c')
      expect((await other.ingest('gwC', [south.alertOf('cam-c', Date.now(), { type: 'camera.intrusion' })])).statusCode).toBe(200)
      expect(other.app.center.feed.head()).toBeGreaterThan(0)
      expect(await first()).toBe(before)
    } finally {
      await other.close()
    }
  })

  it('each caller receives only what their scope allows, as it happens', async () => {
    const inspector = await open('inspector')
    const supervisor = await open('supervisor')
    const south = await open('centerSouth')
    const sensor = f.alertOf('gas-a1', Date.now(), { enterprise: 'e-a1', severity: 'critical', value: 70 })
    const patrol = f.alertOf('r-a', Date.now(), { type: 'patrol.tour_not_started' })
    expect((await center.ingest('gwA', [sensor, patrol])).statusCode).toBe(200)
    await waitFor(() => (inspector.events.length >= 1 && supervisor.events.length >= 1 ? true : undefined), { what: 'events on both streams' })
    // A marker after the alerts: once the south stream sees it, it would have seen the others.
    const marker = new FieldFactory('gw-c', 'o-c').alertOf('gas-c1', Date.now(), { enterprise: 'e-c1' })
    await center.ingest('gwC', [marker])
    await waitFor(() => (south.events.length >= 1 ? true : undefined), { what: 'the marker on the south stream' })
    const idOf = (e: Envelope) => (e as Envelope & { kind: 'alert' }).payload.alertId
    expect(inspector.events.map((e) => [e.event, (JSON.parse(e.data) as { id: string }).id])).toEqual([['alert_update', idOf(sensor)]])
    expect(supervisor.events.map((e) => [e.event, (JSON.parse(e.data) as { id: string }).id])).toEqual([['alert_update', idOf(patrol)]])
    expect(south.events.map((e) => (JSON.parse(e.data) as { id: string }).id)).toEqual([idOf(marker)])
    for (const s of [inspector, supervisor, south]) s.stream.close()
  })

  it('after a reconnect, Last-Event-ID replays exactly what was missed, then continues live', async () => {
    const first = await open('centerNorth')
    const before = f.alertOf('cam-a', Date.now(), { type: 'camera.intrusion' })
    await center.ingest('gwA', [before])
    await waitFor(() => (first.events.length >= 1 ? true : undefined), { what: 'the first event' })
    const lastSeen = first.events.at(-1)!.id!
    // <center database epoch>-<opaque token>
    expect(lastSeen).toMatch(/^[0-9a-f]{12}-[A-Za-z0-9_-]{22}$/)
    first.stream.close()

    // While disconnected: a new alert, and a colleague acknowledges the earlier one.
    const missed = f.alertOf('gas-a2', Date.now(), { enterprise: 'e-a2', severity: 'minor', value: 27 })
    await center.ingest('gwA', [missed])
    expect((await center.as('centerNorth2', 'POST', `/v1/alerts/${(before as Envelope & { kind: 'alert' }).payload.alertId}/acknowledge`, {})).statusCode).toBe(200)

    const second = await open('centerNorth', '', lastSeen)
    await waitFor(() => (second.events.length >= 2 ? true : undefined), { what: 'the replay' })
    const seen = () => second.events.map((e) => { const d = JSON.parse(e.data) as { id: string; state: string }; return [e.event, d.id, d.state] })
    expect(seen()).toEqual([
      ['alert_update', (missed as Envelope & { kind: 'alert' }).payload.alertId, 'raised'],
      ['alert_update', (before as Envelope & { kind: 'alert' }).payload.alertId, 'acknowledged'],
    ])
    const seq = (id: string | undefined) => (center.app.center.feed.ids.parse(id ?? '') as { seq: number }).seq
    expect(second.events.every((e) => seq(e.id) > seq(lastSeen))).toBe(true)

    const live = f.alertOf('r-a', Date.now(), { type: 'patrol.tour_late', severity: 'minor' })
    await center.ingest('gwA', [live])
    await waitFor(() => (second.events.length >= 3 ? true : undefined), { what: 'a live event after the replay' })
    expect(seen()[2]).toEqual(['alert_update', (live as Envelope & { kind: 'alert' }).payload.alertId, 'raised'])
    second.stream.close()
  })

  it('a console far behind gets its whole replay at its own pace, then live events', async () => {
    const lastSeen = center.app.center.feed.ids.format(center.app.center.feed.head())
    // About 1.5 MB of alert updates: more than a live stream may buffer for a slow console.
    const batch = Array.from({ length: 1500 }, (_, i) => f.alertOf('gas-a1', Date.now(), { enterprise: 'e-a1', severity: 'minor', value: i, quantity: 'gas' }))
    for (const e of batch) if (e.kind === 'alert') e.payload.message = `${'长消息 long message '.repeat(25)}${e.payload.value}`
    expect((await center.ingest('gwA', batch)).statusCode).toBe(200)
    const replay = await open('centerNorth', '', lastSeen)
    await waitFor(() => (replay.events.length >= 1500 ? true : undefined), { what: 'the whole replay', timeoutMs: 20_000 })
    const ids = replay.events.map((e) => (center.app.center.feed.ids.parse(e.id ?? '') as { seq: number }).seq)
    expect(ids).toEqual([...ids].sort((x, y) => x - y))
    expect(new Set(ids).size).toBe(1500)
    const live = f.alertOf('r-a', Date.now(), { type: 'patrol.tour_late', severity: 'minor' })
    await center.ingest('gwA', [live])
    await waitFor(() => (replay.events.length === 1501 ? true : undefined), { what: 'the live event after the replay' })
    replay.stream.close()
  })

  it('an id of another center database (made anew) is answered replay_truncated, then live events flow', async () => {
    const other = center.app.center.casebook.epoch === 'a1b2c3d4e5f6' ? 'f6e5d4c3b2a1' : 'a1b2c3d4e5f6'
    const s = await open('centerNorth', '', center.app.center.feed.ids.format(5).replace(/^[0-9a-f]+/, other))
    await waitFor(() => (s.events.some((e) => e.event === 'replay_truncated') ? true : undefined), { what: 'replay_truncated' })
    expect(JSON.parse(s.events[0].data)).toStrictEqual({ reason: 'unknown_id' })
    // The notice moves the console's position on: reconnecting with its id is not another notice.
    const from = s.events[0].id!
    expect(center.app.center.feed.ids.parse(from)).toEqual({ seq: center.app.center.feed.head() })
    await center.ingest('gwA', [f.alertOf('cam-a', Date.now(), { type: 'camera.intrusion' })])
    await waitFor(() => (s.events.some((e) => e.event === 'alert_update') ? true : undefined), { what: 'a live alert after the notice' })
    s.stream.close()
    const again = await open('centerNorth', '', from)
    await waitFor(() => (again.events.some((e) => e.event === 'alert_update') ? true : undefined), { what: 'the replay of the live alert' })
    expect(again.events.map((e) => e.event)).toEqual(['alert_update'])
    again.stream.close()
  })

  it('a pruned notice moves the console past what was pruned, even with nothing of its scope left', async () => {
    const feed = center.app.center.feed
    const old = feed.ids.format(feed.head())
    const south = new FieldFactory('gw-c', 'o-c')
    await center.ingest('gwC', [south.alertOf('cam-c', Date.now(), { type: 'camera.intrusion' }), south.alertOf('cam-c', Date.now(), { type: 'camera.intrusion' })])
    // What Feed.prune does to old rows: only the newest (another office's) is left.
    ;(feed as unknown as { db: { prepare(sql: string): { run(): void } } }).db.prepare('DELETE FROM feed WHERE seq < (SELECT max(seq) FROM feed)').run()
    const s = await open('centerNorth', '', old)
    await waitFor(() => (s.events.some((e) => e.event === 'replay_truncated') ? true : undefined), { what: 'the pruned notice' })
    expect(JSON.parse(s.events[0].data)).toMatchObject({ reason: 'pruned' })
    const from = s.events[0].id!
    expect(from).toBeDefined()
    s.stream.close()
    const again = await open('centerNorth', '', from)
    await center.ingest('gwA', [f.alertOf('cam-a', Date.now(), { type: 'camera.intrusion' })])
    await waitFor(() => (again.events.some((e) => e.event === 'alert_update') ? true : undefined), { what: 'a live alert' })
    expect(again.events.map((e) => e.event)).toEqual(['alert_update'])
    again.stream.close()
  })

  it('takes the query id when the header holds none of ours, and refuses an empty one', async () => {
    const ids = center.app.center.feed.ids
    const from = ids.format(center.app.center.feed.head())
    const events: SseEvent[] = []
    const stream = readSse(`${url}/v1/stream?lastEventId=${encodeURIComponent(from)}`, (e) => events.push(e), { authorization: `Bearer ${TOKENS.centerNorth}`, 'last-event-id': 'garbage' })
    await stream.opened
    await center.ingest('gwA', [f.alertOf('cam-a', Date.now(), { type: 'camera.intrusion' })])
    await waitFor(() => (events.some((e) => e.event === 'alert_update') ? true : undefined), { what: 'a live alert' })
    expect(events.map((e) => e.event)).not.toContain('replay_truncated')
    stream.close()
    expect((await fetch(`${url}/v1/stream?lastEventId=`, { headers: { authorization: `Bearer ${TOKENS.centerNorth}` } })).status).toBe(400)
  })

  it('replay_truncated too_far_behind counts only what this console may see', async () => {
    const other = await startCenter()
    try {
      await other.app.listen({ host: '127.0.0.1', port: 0 })
      const address = other.app.server.address()
      const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
      const start = other.app.center.feed.head()
      // Over 10,000 events the north district cannot see, then one it can.
      const south = new FieldFactory('gw-c', 'o-c')
      for (let i = 0; i < 6; i++) {
        const batch = Array.from({ length: 1800 }, () => south.alertOf('cam-c', Date.now(), { type: 'camera.intrusion', severity: 'minor' }))
        expect((await other.ingest('gwC', batch)).statusCode).toBe(200)
      }
      expect(other.app.center.feed.head() - start).toBeGreaterThan(10_000)
      const north = new FieldFactory('gw-a', 'o-a')
      expect((await other.ingest('gwA', [north.alertOf('cam-a', Date.now(), { type: 'camera.intrusion' })])).statusCode).toBe(200)
      const events: SseEvent[] = []
      const stream = readSse(`${base}/v1/stream`, (e) => events.push(e), { authorization: `Bearer ${TOKENS.centerNorth}`, 'last-event-id': other.app.center.feed.ids.format(start) })
      await stream.opened
      await waitFor(() => (events.some((e) => e.event === 'alert_update') ? true : undefined), { what: 'the one visible event', timeoutMs: 20_000 })
      expect(events.map((e) => e.event)).toEqual(['alert_update'])
      stream.close()
    } finally {
      await other.close()
    }
  })

  it('an id ahead of the feed is answered as being up to date: the feed\'s head is not given away', async () => {
    const head = center.app.center.feed.head()
    // Just past the head and far past it: both must look like a console that missed nothing.
    for (const ahead of [center.app.center.feed.ids.format(head + 1), center.app.center.feed.ids.format(999_999_999)]) {
      const s = await open('centerNorth', '', ahead)
      await center.ingest('gwA', [f.alertOf('cam-a', Date.now(), { type: 'camera.intrusion' })])
      await waitFor(() => (s.events.some((e) => e.event === 'alert_update') ? true : undefined), { what: `a live alert (${ahead})` })
      expect(s.events.map((e) => e.event), ahead).not.toContain('replay_truncated')
      s.stream.close()
    }
  })

  it('event ids are opaque: forged, numeric or damaged ids replay nothing and are answered unknown_id', async () => {
    const ids = center.app.center.feed.ids
    const mine = ids.format(1)
    // A real id decodes; ids of one position differ each time, and show no order.
    expect(ids.parse(mine)).toEqual({ seq: 1 })
    expect(ids.format(1)).not.toBe(mine)
    expect(ids.parse(ids.format(1))).toEqual({ seq: 1 })
    const damaged = `${mine.slice(0, -3)}${mine.at(-3) === 'A' ? 'B' : 'A'}${mine.slice(-2)}`
    for (const forged of ['1', `${ids.epoch}-1`, damaged, `${ids.epoch}-${'A'.repeat(22)}`]) {
      const s = await open('centerNorth', '', forged)
      await waitFor(() => (s.events.some((e) => e.event === 'replay_truncated') ? true : undefined), { what: `replay_truncated for ${forged}` })
      expect(JSON.parse(s.events[0].data), forged).toStrictEqual({ reason: 'unknown_id' })
      expect(s.events.filter((e) => e.event === 'alert_update'), forged).toEqual([])
      s.stream.close()
    }
  })

  it('a stream ends, with nothing more sent, once its token stops signing in (sign-out, revoked, removed)', async () => {
    const directory = center.app.center.directory
    for (const end of ['sign-out', 'user removed'] as const) {
      const name = end === 'sign-out' ? 'zhou' : 'qian'
      await directory.addUser(name, 'center', { district: 'd-north' }, `pw-${name}-0123456789`)
      const session = await directory.signIn(name, `pw-${name}-0123456789`)
      const events: SseEvent[] = []
      const stream = readSse(`${url}/v1/stream`, (e) => events.push(e), { authorization: `Bearer ${session!.token}` })
      await stream.opened
      await center.ingest('gwA', [f.alertOf('gas-a1', Date.now(), { enterprise: 'e-a1' })])
      await waitFor(() => (events.length >= 1 ? true : undefined), { what: 'an alert while signed in' })
      if (end === 'sign-out') expect(directory.revokeByToken(session!.token)).toBe(true)
      else directory.removeUser(name)
      await center.ingest('gwA', [f.alertOf('gas-a1', Date.now(), { enterprise: 'e-a1' })])
      // Ends at once when fixed; bounded when not, so the assertion below says what went wrong.
      await Promise.race([stream.done.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 5000))])
      stream.close()
      expect(events.map((e) => e.event), end).toEqual(['alert_update', 'signed_out'])
    }
  })

  it('ends a revoked stream once, however many deliveries come in the same turn', async () => {
    const directory = center.app.center.directory
    await directory.addUser('sun-2', 'center', { district: 'd-north' }, 'pw-sun-2-0123456789')
    const session = await directory.signIn('sun-2', 'pw-sun-2-0123456789')
    const events: SseEvent[] = []
    const stream = readSse(`${url}/v1/stream?kinds=alert_update,reading`, (e) => events.push(e), { authorization: `Bearer ${session!.token}` })
    await stream.opened
    const uncaught: unknown[] = []
    const onUncaught = (err: unknown) => uncaught.push(err)
    process.on('uncaughtException', onUncaught)
    try {
      expect(directory.revokeByToken(session!.token)).toBe(true)
      // Two ingest batches whose store writes finished together: two deliveries in one turn.
      center.app.center.bus.publish([f.readingOf('gas-a1', Date.now(), 1, 'e-a1')])
      center.app.center.bus.publish([f.readingOf('gas-a1', Date.now(), 2, 'e-a1')])
      await Promise.race([stream.done.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 5000))])
      // A later turn, in case anything was left to throw.
      await new Promise<void>((resolve) => setImmediate(resolve))
    } finally {
      process.off('uncaughtException', onUncaught)
      stream.close()
    }
    expect(uncaught).toEqual([])
    expect(events.map((e) => e.event)).toEqual(['signed_out'])
  })

  it('raw kinds are live, scoped, and without ids; the token may come as access_token for EventSource', async () => {
    const events: SseEvent[] = []
    const stream = readSse(`${url}/v1/stream?kinds=reading,alert&access_token=${TOKENS.inspector}`, (e) => events.push(e))
    await stream.opened
    await center.ingest('gwA', [f.readingOf('gas-a2', Date.now(), 5, 'e-a2'), f.readingOf('gas-a1', Date.now(), 6, 'e-a1')])
    await waitFor(() => (events.length >= 1 ? true : undefined), { what: 'a reading' })
    expect(events.map((e) => [e.event, e.id, (JSON.parse(e.data) as Envelope).device])).toEqual([['reading', undefined, 'gas-a1']])
    stream.close()
    const refused = await fetch(`${url}/v1/stream?kinds=bogus`, { headers: { authorization: `Bearer ${TOKENS.admin}` } })
    expect(refused.status).toBe(400)
    expect((await fetch(`${url}/v1/stream`)).status).toBe(401)
  })
})

describe('the audit trail when the event store refuses rows for good', () => {
  it('the refused rows are logged by id and the trail moves on; an outage still holds it back', async () => {
    const { logger, lines } = capturingLogger('cloud')
    const store = new SqliteStore(':memory:')
    const center = await startCenter({ store, logger })
    try {
      const f = new FieldFactory('gw-a', 'o-a')
      const alert = f.alertOf('gas-a1', Date.now(), { enterprise: 'e-a1', severity: 'critical' })
      const id = (alert as Envelope & { kind: 'alert' }).payload.alertId
      expect((await center.ingest('gwA', [alert])).statusCode).toBe(200)
      const write = store.writeLifecycle.bind(store)
      // An outage: nothing is marked copied.
      store.writeLifecycle = () => Promise.reject(new StoreUnavailableError('InfluxDB write failed: no answer'))
      expect(await center.app.center.casebook.flushAudit()).toBe(0)
      expect(center.app.center.casebook.pendingAudit()).toBe(1)
      // The store refuses the first row for good (as InfluxDB names a field type conflict) and writes the rest.
      store.writeLifecycle = async (rows) => {
        await write(rows.slice(1))
        throw new StoreRejectedError('InfluxDB write failed: HTTP 400: partial write: field type conflict', 400, 'field_type_conflict', 1, [{ path: '/envelopes/0', message: 'type conflict' }])
      }
      expect((await center.as('centerNorth', 'POST', `/v1/alerts/${id}/acknowledge`, { note: 'on my way' })).statusCode).toBe(200)
      expect(await center.app.center.casebook.flushAudit()).toBe(2)
      expect(center.app.center.casebook.pendingAudit()).toBe(0)
      const refused = lines.map((l) => JSON.parse(l) as { code?: string; ids?: string[] }).find((l) => l.code === 'CLOUD_AUDIT_REFUSED')
      expect(refused?.ids).toHaveLength(1)
      // And later rows are copied as before.
      store.writeLifecycle = write
      expect((await center.as('centerNorth', 'POST', `/v1/alerts/${id}/assign`, { department: 'fire' })).statusCode).toBe(200)
      expect(await center.app.center.casebook.flushAudit()).toBe(1)
    } finally {
      await center.close()
    }
  })
})

describe('ingest and the organisation', () => {
  it('an envelope naming an enterprise of another office is refused on its own (400); an unknown enterprise is taken', async () => {
    const center = await startCenter()
    try {
      const f = new FieldFactory('gw-a', 'o-a')
      const t = Date.now()
      const res = await center.ingest('gwA', [f.readingOf('x1', t, 1, 'e-a1'), f.readingOf('x1', t + 1, 2, 'e-c1')])
      expect(res.statusCode).toBe(400)
      expect(res.json()).toMatchObject({ code: 'CLOUD_INGEST_INVALID', problems: [{ path: '/envelopes/1/enterprise' }] })
      expect((await center.ingest('gwA', [f.readingOf('x1', t + 2, 3, 'e-a1'), f.readingOf('x2', t + 3, 4, 'e-not-configured-yet')])).statusCode).toBe(200)
      // Nothing of the refused batch reached the south district's inspector view of e-c1.
      expect((await center.as('centerSouth', 'GET', '/v1/devices')).body).not.toContain('"x1"')
    } finally {
      await center.close()
    }
  })
})

describe('a gateway id used again', () => {
  it('starts without the removed gateway\'s health, and only its new district sees it', async () => {
    const center = await startCenter()
    try {
      const add = async (office: string) => {
        const res = await center.as('admin', 'POST', '/v1/admin/gateways', { id: 'gw-b', office })
        expect(res.statusCode).toBe(201)
        return res.json<{ token: string }>().token
      }
      const send = (token: string, office: string, device: string) =>
        center.app.inject({ method: 'POST', url: '/v1/ingest', headers: { authorization: `Bearer ${token}` }, payload: { envelopes: [new FieldFactory('gw-b', office).readingOf(device, Date.now(), 1)] } })
      const listed = async (who: 'centerNorth' | 'centerSouth') => (await center.as(who, 'GET', '/v1/gateways')).json<{ gateways: { id: string; office: string; link: string; batches?: number }[] }>().gateways.find((g) => g.id === 'gw-b')
      const first = await add('o-b')
      expect((await send(first, 'o-b', 'b-1')).statusCode).toBe(200)
      expect(await listed('centerNorth')).toMatchObject({ office: 'o-b', link: 'up', batches: 1 })
      expect((await center.as('admin', 'DELETE', '/v1/admin/gateways/gw-b')).statusCode).toBe(204)
      await add('o-c')
      // Not north's any more, and south's without north's history.
      expect(await listed('centerNorth')).toBeUndefined()
      expect(await listed('centerSouth')).toMatchObject({ office: 'o-c', link: 'never_seen' })
      expect((await listed('centerSouth'))?.batches).toBeUndefined()

      // Removed again as the CLI does it (the database only, while this process keeps its
      // memory), then added for north: counting starts over, nothing of south's traffic comes along.
      const south = (await center.as('admin', 'POST', '/v1/admin/gateways/gw-b/token')).json<{ token: string }>().token
      expect((await send(south, 'o-c', 'c-1')).statusCode).toBe(200)
      expect(await listed('centerSouth')).toMatchObject({ batches: 1 })
      center.app.center.directory.removeGateway('gw-b')
      expect(await listed('centerSouth')).toBeUndefined()
      const again = await add('o-b')
      expect((await send(again, 'o-b', 'b-2')).statusCode).toBe(200)
      expect(await listed('centerNorth')).toMatchObject({ office: 'o-b', batches: 1, envelopes: 1 })
    } finally {
      await center.close()
    }
  })
})
