/**
 * The EventStore contract: every store implementation runs this same suite (as aedes-persistence
 * and Telegraf's buffers do), so the InfluxDB and SQLite stores cannot drift apart.
 *
 * Each test writes under its own office and devices, so the suite can share one store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Envelope } from '../../contracts/envelope.ts'
import type { EventStore } from '../../cloud-api/store/store.ts'
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
  })
}
