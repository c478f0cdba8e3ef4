import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { InfluxStore } from '../../cloud-api/store/influx-store.ts'
import { describeWith, INFLUXD } from '../helpers/binaries.ts'
import { EnvelopeFactory } from '../helpers/envelopes.ts'
import { startInfluxd, type RunningInfluxd } from '../helpers/influxd.ts'
import { storeContract } from './store-contract.ts'

describeWith([INFLUXD])('InfluxDB store against a real influxd', () => {
  storeContract('InfluxDB 1.x HTTP API', async () => {
    const influxd = await startInfluxd()
    return {
      // The suite writes at fixed dates: raw points kept forever, so they are not "beyond
      // retention" once those dates are more than the default 90 days past.
      store: new InfluxStore({ url: influxd.url, database: 'gridwatch_contract', rawRetention: 'INF' }),
      teardown: () => influxd.stop(),
    }
  })

  describe('retention policies, rollups and their continuous query', () => {
    let influxd: RunningInfluxd
    beforeAll(async () => {
      influxd = await startInfluxd()
    })
    afterAll(async () => {
      await influxd?.stop()
    })

    async function show(db: string, statement: string): Promise<unknown[][]> {
      const res = await fetch(`${influxd.url}/query?db=${db}&q=${encodeURIComponent(statement)}`)
      const body = (await res.json()) as { results: { error?: string; series?: { name?: string; values?: unknown[][] }[] }[] }
      if (body.results[0]?.error) throw new Error(body.results[0].error)
      return (body.results[0]?.series ?? []).filter((s) => statement !== 'SHOW CONTINUOUS QUERIES' || s.name === db).flatMap((s) => s.values ?? [])
    }
    const cqText = (db: string, resample: string) =>
      `CREATE CONTINUOUS QUERY reading_1h ON ${db} RESAMPLE EVERY 1h FOR ${resample} BEGIN ` +
      'SELECT mean(value) AS mean, min(value) AS min, max(value) AS max, count(value) AS count, sum(value) AS sum ' +
      `INTO ${db}.long_term.reading_1h FROM ${db}.autogen.reading GROUP BY time(1h), * END`

    it('open() makes autogen a 90-day default policy, adds long_term (5 years) and the hourly rollup query; a second open() changes nothing', async () => {
      const db = 'gridwatch_schema'
      await new InfluxStore({ url: influxd.url, database: db }).open()
      // name, duration, shard group duration, replication, default
      expect(await show(db, `SHOW RETENTION POLICIES ON ${db}`)).toEqual([
        ['autogen', '2160h0m0s', '24h0m0s', 1, true],
        ['long_term', '43800h0m0s', '168h0m0s', 1, false],
      ])
      expect(await show(db, 'SHOW CONTINUOUS QUERIES')).toEqual([['reading_1h', cqText(db, '1w')]])

      const ddl = vi.spyOn(InfluxStore.prototype as unknown as { ddl(statement: string): Promise<void> }, 'ddl')
      try {
        await new InfluxStore({ url: influxd.url, database: db }).open()
        expect(ddl).not.toHaveBeenCalled()
      } finally {
        ddl.mockRestore()
      }
      expect(await show(db, 'SHOW CONTINUOUS QUERIES')).toHaveLength(1)
    })

    it('open() brings an existing database in line with changed retention options', async () => {
      const db = 'gridwatch_schema_changed'
      await new InfluxStore({ url: influxd.url, database: db }).open()
      await new InfluxStore({ url: influxd.url, database: db, rawRetention: '30d', longTermRetention: '520w', rollupResample: '2d', shortenRetention: true }).open()
      expect(await show(db, `SHOW RETENTION POLICIES ON ${db}`)).toEqual([
        ['autogen', '720h0m0s', '24h0m0s', 1, true],
        ['long_term', '87360h0m0s', '168h0m0s', 1, false],
      ])
      expect(await show(db, 'SHOW CONTINUOUS QUERIES')).toEqual([['reading_1h', cqText(db, '2d')]])
    })

    it('never shortens an existing retention policy by itself; when told to, it rolls the old readings up first', async () => {
      const db = 'gridwatch_upgrade'
      const hour = 3_600_000
      // A database from before retention was managed: autogen keeps everything.
      const legacy = new InfluxStore({ url: influxd.url, database: db, rawRetention: 'INF' })
      await legacy.open()
      const f = new EnvelopeFactory('gw-upgrade', 'office-upgrade')
      const old = Date.now() - 200 * 24 * hour
      await legacy.write([f.reading('gw-upgrade-gas', old, 7), f.reading('gw-upgrade-gas', Date.now() - hour, 8)])

      const upgraded = new InfluxStore({ url: influxd.url, database: db })
      await upgraded.open()
      expect((await show(db, `SHOW RETENTION POLICIES ON ${db}`))[0]).toEqual(['autogen', '0s', '168h0m0s', 1, true])
      expect(upgraded.notices).toEqual([expect.stringContaining('not shortened')])

      const shortened = new InfluxStore({ url: influxd.url, database: db, shortenRetention: true })
      await shortened.open()
      expect((await show(db, `SHOW RETENTION POLICIES ON ${db}`))[0]).toEqual(['autogen', '2160h0m0s', '24h0m0s', 1, true])
      // The 200-day-old reading's hour is in the long-term rollups before InfluxDB drops the raw point.
      const hourOf = Math.floor(old / hour) * hour
      expect(await show(db, `SELECT "mean", "count" FROM "long_term"."reading_1h" WHERE time = ${hourOf}ms`)).toEqual([[expect.anything(), 7, 1]])
    })

    it('refuses retention options that are not InfluxQL durations', () => {
      expect(() => new InfluxStore({ url: influxd.url, database: 'x', rawRetention: '90 days' })).toThrow(/not an InfluxQL duration/)
      expect(() => new InfluxStore({ url: influxd.url, database: 'x', rawRetention: '30m' })).toThrow(/at least 1h/)
      expect(() => new InfluxStore({ url: influxd.url, database: 'x', rollupResample: 'INF' })).toThrow(/rollupResample/)
    })

    it('series() reads 1h and 1d windows older than the rollup horizon from long_term.reading_1h, the rest from raw points', async () => {
      const db = 'gridwatch_rollups'
      const hour = 3_600_000
      const TD = Date.UTC(2026, 9, 1) // a midnight UTC
      const now = TD + 2 * 24 * hour + 5.5 * hour
      // Horizon for 1h windows: now - 1d, up to the hour = TD + 1d 6h; for 1d windows: TD + 2d.
      const base = { url: influxd.url, database: db, rawRetention: 'INF', longTermRetention: 'INF', now: () => now }
      const store = new InfluxStore({ ...base, rollupsOlderThan: '1d' })
      const rawOnly = new InfluxStore(base)
      await store.open()
      const f = new EnvelopeFactory('gw-rollup', 'office-rollup')
      const dev = 'gw-rollup-gas'
      const at = (d: number, h: number, ms = 0) => TD + d * 24 * hour + h * hour + ms
      await store.write([
        f.reading(dev, at(0, 0, 600_000), 2),
        f.reading(dev, at(0, 0, 2_400_000), 4),
        f.reading(dev, at(0, 5), 12),
        f.reading(dev, at(1, 3), 1),
        f.reading(dev, at(1, 5) - 1, 3),
        f.reading(dev, at(1, 6), 8),
        f.reading(dev, at(2, 1), 5),
        f.reading(dev, at(0, 0, 600_000), 99, 'temperature', '°C'),
        f.reading(`${dev}-other`, at(0, 0, 600_000), 77),
      ])
      await store.backfillRollups(TD, at(3, 0))
      // Late readings, after the rollups were made: one in an hour served by rollups (not seen),
      // one in an hour served by raw points (seen).
      await store.write([f.reading(dev, at(0, 0, 1_200_000), 100), f.reading(dev, at(1, 6, 60_000), 0)])

      const q = { device: dev, quantity: 'gas', from: TD, to: at(2, 5) }
      expect(await store.series({ ...q, window: '1h' })).toStrictEqual([
        { ts: at(0, 0), mean: 3, min: 2, max: 4, count: 2 },
        { ts: at(0, 5), mean: 12, min: 12, max: 12, count: 1 },
        { ts: at(1, 3), mean: 1, min: 1, max: 1, count: 1 },
        { ts: at(1, 4), mean: 3, min: 3, max: 3, count: 1 },
        { ts: at(1, 6), mean: 4, min: 0, max: 8, count: 2 },
        { ts: at(2, 1), mean: 5, min: 5, max: 5, count: 1 },
      ])
      expect(await store.series({ ...q, window: '1d' })).toStrictEqual([
        { ts: at(0, 0), mean: 6, min: 2, max: 12, count: 3 },
        { ts: at(1, 0), mean: 4, min: 1, max: 8, count: 3 },
        { ts: at(2, 0), mean: 5, min: 5, max: 5, count: 1 },
      ])
      // Rollups are whole hours: a `from` within an hour counts all of that hour.
      expect((await store.series({ ...q, from: at(0, 0, 1_800_000), window: '1h' }))[0]).toStrictEqual({ ts: at(0, 0), mean: 3, min: 2, max: 4, count: 2 })
      expect(await store.series({ ...q, quantity: 'temperature', window: '1d' })).toStrictEqual([{ ts: at(0, 0), mean: 99, min: 99, max: 99, count: 1 }])
      // 1m windows, and a store that does not read rollups, see every raw point.
      expect(await store.series({ ...q, to: at(0, 0, 3_599_999), window: '1m' })).toHaveLength(3)
      expect(await rawOnly.series({ ...q, window: '1d' })).toStrictEqual([
        { ts: at(0, 0), mean: 29.5, min: 2, max: 100, count: 4 },
        { ts: at(1, 0), mean: 3, min: 0, max: 8, count: 4 },
        { ts: at(2, 0), mean: 5, min: 5, max: 5, count: 1 },
      ])
    })

    it("series() from the rollups keeps a moved sensor's enterprises apart, as raw points do", async () => {
      const hour = 3_600_000
      const TD = Date.UTC(2026, 9, 1)
      const store = new InfluxStore({ url: influxd.url, database: 'gridwatch_rollups_moved', rawRetention: 'INF', longTermRetention: 'INF', rollupsOlderThan: '1d', now: () => TD + 3 * 24 * hour })
      await store.open()
      const f = new EnvelopeFactory('gw-moved', 'office-moved')
      const dev = 'gw-moved-gas'
      await store.write([f.reading(dev, TD + 600_000, 2, 'gas', '%LEL', 'ent-a'), f.reading(dev, TD + 1_200_000, 4, 'gas', '%LEL', 'ent-a'), f.reading(dev, TD + 1_800_000, 9, 'gas', '%LEL', 'ent-b')])
      await store.backfillRollups(TD, TD + 2 * hour)
      const q = { device: dev, quantity: 'gas', from: TD, to: TD + hour - 1, window: '1h' as const }
      expect(await store.series({ ...q, enterprises: ['ent-a'] })).toStrictEqual([{ ts: TD, mean: 3, min: 2, max: 4, count: 2 }])
      expect(await store.series({ ...q, enterprises: ['ent-b'] })).toStrictEqual([{ ts: TD, mean: 9, min: 9, max: 9, count: 1 }])
      expect(await store.series(q)).toStrictEqual([{ ts: TD, mean: 5, min: 2, max: 9, count: 3 }])
    })
  })
})
