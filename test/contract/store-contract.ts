/**
 * The EventStore contract: every store implementation runs this same suite (as aedes-persistence
 * and Telegraf's buffers do), so the InfluxDB and SQLite stores cannot drift apart.
 *
 * Each test writes under its own office and devices, so the suite can share one store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Envelope } from '../../contracts/envelope.ts'
import type { EventStore, LifecycleRow } from '../../cloud-api/store/store.ts'
import { EnvelopeFactory } from '../helpers/envelopes.ts'

export interface StoreUnderTest {
  store: EventStore
  teardown(): Promise<void>
}

const T0 = Date.UTC(2026, 10, 26, 8, 0, 0, 123)
let caseNo = 0
/** A fresh gateway/office namespace per test. */
function fresh() {
  caseNo++
  return new EnvelopeFactory(`gw-c${caseNo}`, `office-c${caseNo}`)
}
/** A lifecycle row id as the center makes them (`lc:<seq>`), unique to the current test. */
function lcId(n: number): string {
  return `lc:${caseNo * 1000 + n}`
}
/** A minute boundary after T0 (epoch multiple of 60 s), for the windowed series. */
const M0 = Date.UTC(2026, 10, 26, 9, 0, 0)

export function storeContract(name: string, setup: () => Promise<StoreUnderTest>): void {
  describe(`EventStore contract: ${name}`, () => {
    let sut: StoreUnderTest
    let store: EventStore
    beforeAll(async () => {
      sut = await setup()
      store = sut.store
      await store.open()
    })
    afterAll(async () => {
      await sut?.teardown()
    })

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined()
    })

    it('returns the readings of one device within [from, to] inclusive, oldest first, at millisecond precision', async () => {
      const f = fresh()
      const dev = `${f.gateway}-gas`
      const written = [3, 1, 2].map((i) => f.reading(dev, T0 + i * 1000, i * 10))
      await store.write(written)
      const points = await store.readings({ device: dev, from: T0 + 1000, to: T0 + 3000, limit: 100 })
      expect(points.map((p) => [p.ts, p.value, p.quantity, p.unit])).toEqual([
        [T0 + 1000, 10, 'gas', '%LEL'],
        [T0 + 2000, 20, 'gas', '%LEL'],
        [T0 + 3000, 30, 'gas', '%LEL'],
      ])
      expect(points.map((p) => p.id)).toEqual([written[1].id, written[2].id, written[0].id])
    })

    it('leaves out other devices and readings outside the range', async () => {
      const f = fresh()
      const dev = `${f.gateway}-a`
      await store.write([
        f.reading(dev, T0 - 1, 1),
        f.reading(dev, T0, 2),
        f.reading(dev, T0 + 10, 3),
        f.reading(dev, T0 + 11, 4),
        f.reading(`${f.gateway}-b`, T0 + 5, 99),
      ])
      const points = await store.readings({ device: dev, from: T0, to: T0 + 10, limit: 100 })
      expect(points.map((p) => p.value)).toEqual([2, 3])
    })

    it('keeps two readings of one device stamped in the same millisecond, in sequence order', async () => {
      const f = fresh()
      const dev = `${f.gateway}-gas`
      await store.write([f.reading(dev, T0, 11), f.reading(dev, T0, 12), f.reading(dev, T0, 13)])
      const points = await store.readings({ device: dev, from: T0, to: T0, limit: 100 })
      expect(points.map((p) => p.value)).toEqual([11, 12, 13])
    })

    it('is idempotent by id: a replayed batch leaves exactly one copy and is answered stored or duplicate', async () => {
      const f = fresh()
      const dev = `${f.gateway}-gas`
      const batch = [f.reading(dev, T0, 1), f.reading(dev, T0 + 1, 2), f.alert(dev, T0 + 1, { alertId: 'x:1', state: 'raised' })]
      expect(await store.write(batch)).toEqual(['stored', 'stored', 'stored'])
      const replay = await store.write(batch)
      expect(replay).toHaveLength(3)
      for (const status of replay) expect(['stored', 'duplicate']).toContain(status)
      const points = await store.readings({ device: dev, from: T0, to: T0 + 1, limit: 100 })
      expect(points.map((p) => p.value)).toEqual([1, 2])
      const alerts = await store.alertEvents({ office: f.office, from: T0, to: T0 + 1, limit: 100 })
      expect(alerts).toHaveLength(1)
    })

    it('keeps the same device id of two offices apart when the office is given', async () => {
      const f = fresh()
      const g = new EnvelopeFactory(`${f.gateway}-2`, `${f.office}-2`)
      const dev = `${f.gateway}-shared`
      await store.write([f.reading(dev, T0, 1), f.reading(dev, T0 + 60_000, 2), g.reading(dev, T0, 100), g.reading(dev, T0 + 60_000, 200)])
      const mine = await store.readings({ device: dev, office: f.office, from: T0, to: T0 + 60_000, limit: 100 })
      expect(mine.map((p) => p.value)).toEqual([1, 2])
      const theirs = await store.series({ device: dev, office: g.office, quantity: 'gas', from: T0 - (T0 % 60_000), to: T0 + 120_000, window: '1m' })
      expect(theirs.map((b) => [b.mean, b.count])).toEqual([
        [100, 1],
        [200, 1],
      ])
      const both = await store.readings({ device: dev, from: T0, to: T0 + 60_000, limit: 100 })
      expect(both.map((p) => p.value).sort((x, y) => x - y)).toEqual([1, 2, 100, 200])
    })

    it("keeps each enterprise's part of a moved sensor's history apart when enterprises are given", async () => {
      const f = fresh()
      const dev = `${f.gateway}-moved`
      const [a, b] = [`${f.office}-ent-a`, `${f.office}-ent-b`]
      // Measured for A, then moved to B; the last reading names no enterprise.
      await store.write([f.reading(dev, T0, 1, 'gas', '%LEL', a), f.reading(dev, T0 + 60_000, 2, 'gas', '%LEL', a), f.reading(dev, T0 + 120_000, 3, 'gas', '%LEL', b), f.reading(dev, T0 + 180_000, 4)])
      const range = { device: dev, office: f.office, from: T0, to: T0 + 180_000, limit: 100 }
      const values = async (enterprises?: string[]) => (await store.readings({ ...range, ...(enterprises ? { enterprises } : {}) })).map((p) => p.value)
      expect(await values([a])).toEqual([1, 2])
      expect(await values([b])).toEqual([3])
      expect(await values([a, b])).toEqual([1, 2, 3])
      expect(await values([`${f.office}-ent-c`])).toEqual([])
      expect(await values([])).toEqual([])
      expect(await values()).toEqual([1, 2, 3, 4])
      const windows = { device: dev, office: f.office, quantity: 'gas', from: T0 - (T0 % 60_000), to: T0 + 180_000, window: '1m' as const }
      expect((await store.series({ ...windows, enterprises: [b] })).map((w) => [w.mean, w.count])).toEqual([[3, 1]])
      expect((await store.series({ ...windows, enterprises: [a] })).map((w) => [w.mean, w.count])).toEqual([
        [1, 1],
        [2, 1],
      ])
      expect(await store.series({ ...windows, enterprises: [] })).toEqual([])
      expect(await store.series(windows)).toHaveLength(4)
      expect(await store.series({ ...windows, window: '1h', enterprises: [a, b] })).toEqual([{ ts: T0 - (T0 % 3_600_000), mean: 2, min: 1, max: 3, count: 3 }])
    })

    it('filters readings by quantity', async () => {
      const f = fresh()
      const dev = `${f.gateway}-multi`
      await store.write([f.reading(dev, T0, 5, 'gas', '%LEL'), f.reading(dev, T0 + 1, 21.5, 'temperature', '°C')])
      const temps = await store.readings({ device: dev, quantity: 'temperature', from: T0, to: T0 + 1, limit: 100 })
      expect(temps.map((p) => [p.quantity, p.value, p.unit])).toEqual([['temperature', 21.5, '°C']])
    })

    it('honours the limit, keeping the oldest', async () => {
      const f = fresh()
      const dev = `${f.gateway}-gas`
      await store.write(Array.from({ length: 10 }, (_, i) => f.reading(dev, T0 + i, i)))
      const points = await store.readings({ device: dev, from: T0, to: T0 + 9, limit: 4 })
      expect(points.map((p) => p.value)).toEqual([0, 1, 2, 3])
    })

    it('stores alert events with every field and returns them oldest first, filtered by office and time', async () => {
      const f = fresh()
      const other = new EnvelopeFactory(`${f.gateway}-o`, `${f.office}-other`)
      const dev = `${f.gateway}-gas`
      const raise = f.stamp({
        gateway: f.gateway,
        office: f.office,
        device: dev,
        enterprise: 'ent-1',
        grid: 'g-1',
        ts: T0,
        kind: 'alert',
        payload: {
          alertId: '',
          state: 'raised',
          type: 'sensor.threshold',
          severity: 'major',
          message: 'gas 26 %LEL at or above low alarm 25 %LEL',
          cause: `${f.gateway}:77`,
          quantity: 'gas',
          value: 26,
          unit: '%LEL',
          threshold: 25,
          peak: 26,
          level: 'street',
        },
      })
      raise.payload.alertId = raise.id
      const clear = f.alert(dev, T0 + 5000, { alertId: raise.id, state: 'cleared', severity: 'critical', value: 3, peak: 58, quantity: 'gas', unit: '%LEL', threshold: 50 })
      await store.write([clear, raise, other.alert(dev, T0 + 1, { alertId: 'o:1', state: 'raised' })])

      const rows = await store.alertEvents({ office: f.office, from: T0, to: T0 + 5000, limit: 100 })
      expect(rows).toEqual([
        {
          id: raise.id,
          ts: T0,
          office: f.office,
          gateway: f.gateway,
          device: dev,
          enterprise: 'ent-1',
          grid: 'g-1',
          alertId: raise.id,
          state: 'raised',
          type: 'sensor.threshold',
          severity: 'major',
          message: 'gas 26 %LEL at or above low alarm 25 %LEL',
          cause: `${f.gateway}:77`,
          quantity: 'gas',
          value: 26,
          unit: '%LEL',
          threshold: 25,
          peak: 26,
          level: 'street',
        },
        {
          id: clear.id,
          ts: T0 + 5000,
          office: f.office,
          gateway: f.gateway,
          device: dev,
          alertId: raise.id,
          state: 'cleared',
          type: 'sensor.threshold',
          severity: 'critical',
          message: 'test alert',
          quantity: 'gas',
          value: 3,
          unit: '%LEL',
          threshold: 50,
          peak: 58,
        },
      ])
      const early = await store.alertEvents({ office: f.office, from: T0, to: T0 + 4999, limit: 100 })
      expect(early.map((r) => r.id)).toEqual([raise.id])
    })

    it('round-trips text with quotes, commas, equals signs, spaces, backslashes, newlines and Chinese', async () => {
      const f = fresh()
      const dev = `${f.gateway}-cam`
      const message = '老街东口 "north, gate" a=b \\ back\nslash 可燃气体'
      await store.write([f.alert(dev, T0, { alertId: 'm:1', state: 'raised', message, unit: 'm³/h' })])
      const [row] = await store.alertEvents({ office: f.office, from: T0, to: T0, limit: 10 })
      expect(row?.message).toBe(message)
      expect(row?.unit).toBe('m³/h')
    })

    it('stores data-gap records and returns them by office and time', async () => {
      const f = fresh()
      const gap = f.stamp({
        gateway: f.gateway,
        office: f.office,
        device: `${f.gateway}-gas`,
        ts: T0 + 60_000,
        kind: 'gap',
        payload: { class: 'telemetry', reason: 'quota', from: T0, to: T0 + 59_000, count: 1234, kinds: ['reading'] },
      })
      await store.write([gap])
      expect(await store.gaps({ office: f.office, from: T0, to: T0 + 120_000, limit: 10 })).toEqual([
        {
          id: gap.id,
          ts: T0 + 60_000,
          office: f.office,
          gateway: f.gateway,
          device: `${f.gateway}-gas`,
          class: 'telemetry',
          reason: 'quota',
          from: T0,
          to: T0 + 59_000,
          count: 1234,
          kinds: ['reading'],
        },
      ])
      expect(await store.gaps({ office: f.office, from: T0, to: T0 + 59_999, limit: 10 })).toEqual([])
    })

    it('accepts every envelope kind in one large batch', async () => {
      const f = fresh()
      const batch: Envelope[] = []
      for (let i = 0; i < 1000; i++) {
        const ts = T0 + i
        batch.push(
          f.reading(`${f.gateway}-gas`, ts, i % 60),
          f.scan(`${f.gateway}-phone`, ts, `TAG${i}`, i % 2 ? 'cp-1' : undefined),
          f.camera(`${f.gateway}-cam`, ts),
          f.report(`${f.gateway}-phone`, ts, `report ${i}`),
          f.status(`${f.gateway}-gas`, ts, 'online'),
        )
        if (i % 100 === 0) batch.push(f.aggregate(`${f.gateway}-gas`, T0 + i * 60_000, 3.5), f.incident(`${f.gateway}-phone`, ts, `incident ${i}`))
      }
      const statuses = await store.write(batch)
      expect(statuses).toHaveLength(5020)
      expect(statuses.every((s) => s === 'stored')).toBe(true)
      const points = await store.readings({ device: `${f.gateway}-gas`, from: T0, to: T0 + 999, limit: 5000 })
      expect(points).toHaveLength(1000)
    })

    it('series: 1m windows aligned to UTC minutes, with exact mean/min/max/count, empty windows left out, bounds inclusive', async () => {
      const f = fresh()
      const dev = `${f.gateway}-gas`
      await store.write([
        f.reading(dev, M0 - 1, 100), // before `from`
        f.reading(dev, M0, 1), // at `from`
        f.reading(dev, M0 + 20_000, 2),
        f.reading(dev, M0 + 59_999, 4.5),
        // minute M0+1 has no reading
        f.reading(dev, M0 + 120_000, 7),
        f.reading(dev, M0 + 120_000, -1), // same millisecond: both count
        f.reading(dev, M0 + 180_500, 10), // at `to`
        f.reading(dev, M0 + 180_501, 1000), // after `to`
        f.reading(dev, M0 + 30_000, 50, 'temperature', '°C'), // another quantity
        f.reading(`${dev}-other`, M0 + 30_000, 60), // another device
      ])
      expect(await store.series({ device: dev, quantity: 'gas', from: M0, to: M0 + 180_500, window: '1m' })).toStrictEqual([
        { ts: M0, mean: 2.5, min: 1, max: 4.5, count: 3 },
        { ts: M0 + 120_000, mean: 3, min: -1, max: 7, count: 2 },
        { ts: M0 + 180_000, mean: 10, min: 10, max: 10, count: 1 },
      ])
      // A `from` within a window: the window still starts at the minute, and counts only what is in range.
      expect(await store.series({ device: dev, quantity: 'gas', from: M0 + 1, to: M0 + 180_499, window: '1m' })).toStrictEqual([
        { ts: M0, mean: 3.25, min: 2, max: 4.5, count: 2 },
        { ts: M0 + 120_000, mean: 3, min: -1, max: 7, count: 2 },
      ])
      expect(await store.series({ device: dev, quantity: 'temperature', from: M0, to: M0 + 180_500, window: '1m' })).toStrictEqual([
        { ts: M0, mean: 50, min: 50, max: 50, count: 1 },
      ])
      expect(await store.series({ device: dev, quantity: 'gas', from: M0 + 60_000, to: M0 + 119_999, window: '1m' })).toStrictEqual([])
    })

    it('series: 1h and 1d windows aligned to UTC hours and days', async () => {
      const f = fresh()
      const dev = `${f.gateway}-gas`
      const day = Date.UTC(2026, 10, 25) // midnight UTC
      const hour = 3_600_000
      await store.write([
        f.reading(dev, day + 22 * hour + 600_000, 1), // 22:10
        f.reading(dev, day + 22 * hour + 3_000_000, 3), // 22:50
        // 23:00-23:59 empty
        f.reading(dev, day + 24 * hour, 6), // next day 00:00:00.000
        f.reading(dev, day + 25 * hour - 1, 0), // 00:59:59.999
        f.reading(dev, day + 26 * hour + 1_800_000, 9), // 02:30
      ])
      const range = { device: dev, quantity: 'gas', from: day + 22 * hour, to: day + 26 * hour + 1_800_000 }
      expect(await store.series({ ...range, window: '1h' })).toStrictEqual([
        { ts: day + 22 * hour, mean: 2, min: 1, max: 3, count: 2 },
        { ts: day + 24 * hour, mean: 3, min: 0, max: 6, count: 2 },
        { ts: day + 26 * hour, mean: 9, min: 9, max: 9, count: 1 },
      ])
      expect(await store.series({ ...range, window: '1d' })).toStrictEqual([
        { ts: day, mean: 2, min: 1, max: 3, count: 2 },
        { ts: day + 24 * hour, mean: 5, min: 0, max: 9, count: 3 },
      ])
      // `to` one millisecond before the 02:30 reading leaves the 02:00 window out.
      expect(await store.series({ ...range, to: day + 26 * hour + 1_799_999, window: '1h' })).toHaveLength(2)
    })

    it('scans: one office within [from, to] inclusive, oldest first in sequence order, every field round-tripped', async () => {
      const f = fresh()
      const other = new EnvelopeFactory(`${f.gateway}-o`, `${f.office}-other`)
      const dev = `${f.gateway}-phone`
      const first = f.scan(dev, T0, 'TAG-A', 'cp-gate')
      const bare = f.stamp({ gateway: f.gateway, office: f.office, device: `${f.gateway}-reader`, ts: T0, kind: 'scan', payload: { tag: '04:A2:19:7F', method: 'qr' } })
      // A phone's scan carries where it was read.
      const last = f.stamp({
        gateway: f.gateway,
        office: f.office,
        device: dev,
        ts: T0 + 60_000,
        kind: 'scan',
        payload: { tag: 'TAG-B', staff: 'staff-1', method: 'nfc', location: { lat: 32.0617, lon: 118.7778 } },
      })
      await store.write([
        last,
        f.scan(dev, T0 - 1, 'TAG-EARLY', 'cp-gate'),
        bare,
        first,
        f.scan(dev, T0 + 60_001, 'TAG-LATE'),
        other.scan(dev, T0 + 1, 'TAG-OTHER', 'cp-gate'),
        f.reading(`${f.gateway}-gas`, T0 + 2, 3),
      ])
      // `bare` was stamped after `first` but written before it: same millisecond, sequence order.
      expect(await store.scans({ office: f.office, from: T0, to: T0 + 60_000, limit: 100 })).toStrictEqual([
        { id: first.id, ts: T0, office: f.office, device: dev, tag: 'TAG-A', checkpoint: 'cp-gate', staff: 'staff-1', method: 'nfc' },
        { id: bare.id, ts: T0, office: f.office, device: `${f.gateway}-reader`, tag: '04:A2:19:7F', method: 'qr' },
        { id: last.id, ts: T0 + 60_000, office: f.office, device: dev, tag: 'TAG-B', staff: 'staff-1', method: 'nfc', location: { lat: 32.0617, lon: 118.7778 } },
      ])
      expect((await store.scans({ office: f.office, from: T0, to: T0 + 60_000, limit: 2 })).map((s) => s.id)).toEqual([first.id, bare.id])
      expect((await store.scans({ office: `${f.office}-other`, from: T0, to: T0 + 60_000, limit: 100 })).map((s) => s.tag)).toEqual(['TAG-OTHER'])
      expect(await store.scans({ office: f.office, from: T0 + 1, to: T0 + 59_999, limit: 100 })).toStrictEqual([])
    })

    it('lifecycle: round-trips every field, Chinese text, quotes and newlines in notes; oldest first', async () => {
      const f = fresh()
      const full: LifecycleRow = {
        id: lcId(1),
        ts: T0,
        office: f.office,
        enterprise: 'ent-燃气-1',
        subject: 'alert',
        subjectId: `${f.gateway}:17`,
        action: 'assigned',
        actor: '张伟',
        state: 'assigned',
        note: '老街东口 "north, gate" a=b \\ back\nslash 第二行\n可燃气体,已通知 it\\\'s \'单引号\' trailing\\',
        department: '城管 "一队"',
        level: 'street',
      }
      const bare: LifecycleRow = { id: lcId(2), ts: T0 + 1, office: f.office, subject: 'incident', subjectId: `${f.gateway}:18`, action: 'escalated', actor: 'system', state: 'escalated' }
      const gatewayClear: LifecycleRow = { id: lcId(3), ts: T0 + 5000, office: f.office, subject: 'alert', subjectId: `${f.gateway}:17`, action: 'auto-cleared', actor: `gateway:${f.gateway}`, state: 'closed', note: '' }
      await store.writeLifecycle([gatewayClear, bare, full])
      expect(await store.lifecycle({ office: f.office, from: T0, to: T0 + 5000, limit: 100 })).toStrictEqual([full, bare, gatewayClear])
    })

    it('lifecycle: rows of one millisecond come back in id sequence order', async () => {
      const f = fresh()
      const rows: LifecycleRow[] = [5, 3, 4].map((n) => ({
        id: lcId(n),
        ts: T0,
        office: f.office,
        subject: 'alert',
        subjectId: `${f.gateway}:1`,
        action: n === 3 ? 'acknowledged' : 'assigned',
        actor: 'li',
        state: `s${n}`,
      }))
      await store.writeLifecycle(rows)
      expect((await store.lifecycle({ office: f.office, from: T0, to: T0, limit: 100 })).map((r) => r.id)).toEqual([lcId(3), lcId(4), lcId(5)])
    })

    it('lifecycle: idempotent by id, so a rewritten row (alone or in another batch) leaves one copy', async () => {
      const f = fresh()
      const row = (n: number, ts: number): LifecycleRow => ({
        id: lcId(n),
        ts,
        office: f.office,
        subject: 'incident',
        subjectId: `${f.gateway}:9`,
        action: 'acknowledged',
        actor: 'wang',
        state: 'acknowledged',
        note: `n${n}`,
      })
      await store.writeLifecycle([row(1, T0), row(2, T0)])
      await store.writeLifecycle([row(2, T0)])
      await store.writeLifecycle([row(3, T0 + 1), row(1, T0), row(2, T0)])
      await store.writeLifecycle([])
      expect((await store.lifecycle({ subjectId: `${f.gateway}:9`, from: T0, to: T0 + 1, limit: 100 })).map((r) => [r.id, r.note])).toEqual([
        [lcId(1), 'n1'],
        [lcId(2), 'n2'],
        [lcId(3), 'n3'],
      ])
    })

    it('lifecycle: filters by office and by subject, within [from, to] inclusive, with a limit', async () => {
      const f = fresh()
      const otherOffice = `${f.office}-other`
      const s1 = `${f.office}-case-1`
      const s2 = `${f.office}-case-2`
      const row = (n: number, ts: number, office: string, subjectId: string): LifecycleRow => ({
        id: lcId(n),
        ts,
        office,
        subject: 'incident',
        subjectId,
        action: 'noted',
        actor: 'zhao',
        state: 'open',
      })
      await store.writeLifecycle([
        row(1, T0 - 1, f.office, s1),
        row(2, T0, f.office, s1),
        row(3, T0 + 1, f.office, s2),
        row(4, T0 + 2, otherOffice, s1), // the same subject id in another office
        row(5, T0 + 3, f.office, s1),
        row(6, T0 + 4, f.office, s2),
      ])
      const ids = async (q: { office?: string; subjectId?: string; from: number; to: number; limit?: number }) =>
        (await store.lifecycle({ limit: 100, ...q })).map((r) => r.id)
      expect(await ids({ office: f.office, from: T0, to: T0 + 3 })).toEqual([lcId(2), lcId(3), lcId(5)])
      expect(await ids({ subjectId: s1, from: T0, to: T0 + 3 })).toEqual([lcId(2), lcId(4), lcId(5)])
      expect(await ids({ office: f.office, subjectId: s1, from: T0 - 1, to: T0 + 4 })).toEqual([lcId(1), lcId(2), lcId(5)])
      expect(await ids({ office: otherOffice, subjectId: s2, from: T0 - 1, to: T0 + 4 })).toEqual([])
      expect(await ids({ office: f.office, from: T0 - 1, to: T0 + 4, limit: 2 })).toEqual([lcId(1), lcId(2)])
      expect(await ids({ office: f.office, from: T0 + 2, to: T0 + 2 })).toEqual([])
    })
  })
}
