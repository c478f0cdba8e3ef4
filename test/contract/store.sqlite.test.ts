import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SqliteStore } from '../../cloud-api/store/sqlite-store.ts'
import type { SyncFn } from '../../common/wal-sync.ts'
import { EnvelopeFactory } from '../helpers/envelopes.ts'
import { storeContract } from './store-contract.ts'
import { removeTestDir } from '../helpers/temp.ts'

storeContract('SQLite (embedded)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gridwatch-store-'))
  const store = new SqliteStore(join(dir, 'events.db'))
  return {
    store,
    async teardown() {
      await store.close()
      removeTestDir(dir)
    },
  }
})

describe('SQLite store: a large batch and a live alert', () => {
  let dir: string
  let store: SqliteStore
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gridwatch-store-slices-'))
    store = new SqliteStore(join(dir, 'events.db'))
    await store.open()
  })
  afterAll(async () => {
    await store.close()
    removeTestDir(dir)
  })

  it('writes an alert that arrives during a 20,000-reading batch before that batch is done, and loses nothing of either', async () => {
    const f = new EnvelopeFactory('gw-slices', 'o-slices')
    const t0 = Date.UTC(2026, 10, 26, 8)
    const readings = Array.from({ length: 20_000 }, (_, i) => f.reading('gas-002', t0 + i, i % 100))
    const alert = f.alert('gas-001', t0, { alertId: 'gw-slices:alert-1', state: 'raised' })
    const finished: string[] = []
    const bulk = store.write(readings).then((s) => (finished.push('bulk'), s))
    const live = store.write([alert]).then((s) => (finished.push('alert'), s))
    const [bulkStatuses, liveStatuses] = await Promise.all([bulk, live])

    expect(finished).toEqual(['alert', 'bulk'])
    expect(liveStatuses).toEqual(['stored'])
    expect(bulkStatuses).toHaveLength(20_000)
    expect(bulkStatuses.every((s) => s === 'stored')).toBe(true)
    const stored = await store.readings({ device: 'gas-002', from: t0, to: t0 + 20_000, limit: 30_000 })
    expect(stored.map((p) => p.value)).toEqual(readings.map((r) => (r.kind === 'reading' ? r.payload.value : NaN)))
    // Sent again (the gateway's retry after a lost answer), every id is known, across slices.
    const again = await store.write(readings)
    expect(new Set(again)).toEqual(new Set(['duplicate']))
  })
})

describe('SQLite store: durable before it answers', () => {
  it('answers a batch written in several slices after one fsync of its WAL, not before it returns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gridwatch-store-sync-'))
    const syncs: ((err: NodeJS.ErrnoException | null) => void)[] = []
    const syncWal: SyncFn = (_fd, done) => void syncs.push(done)
    const store = new SqliteStore(join(dir, 'events.db'), { syncWal })
    try {
      await store.open()
      const f = new EnvelopeFactory('gw-sync', 'o-sync')
      const t0 = Date.UTC(2026, 10, 26, 9)
      let answered = false
      const written = store.write(Array.from({ length: 20_000 }, (_, i) => f.reading('gas-003', t0 + i, i % 50))).then((s) => ((answered = true), s))
      const deadline = Date.now() + 10_000
      while (syncs.length === 0 && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve))
      // Every slice is committed by now; the answer waits for the fsync, and one covers them all.
      await new Promise((resolve) => setImmediate(resolve))
      expect(syncs.length).toBe(1)
      expect(answered).toBe(false)
      syncs.shift()!(null)
      expect((await written).every((s) => s === 'stored')).toBe(true)
      // A failed fsync is the store failing: the gateway keeps the batch and sends it again.
      const lost = f.reading('gas-003', t0 + 30_000, 1)
      const failing = store.write([lost])
      while (syncs.length === 0 && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve))
      syncs.shift()!(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }))
      await expect(failing).rejects.toThrow('sqlite fsync failed')
      // The resend must not be answered "duplicate" on the word of a later fsync: the failed one
      // may have lost it. Refused, and not ready, until a restart recovers from the disk.
      await expect(store.write([lost])).rejects.toThrow('needs a restart')
      await expect(store.ping()).rejects.toThrow('needs a restart')
      expect(syncs).toHaveLength(0)
    } finally {
      const closing = store.close()
      for (const done of syncs.splice(0)) done(null)
      await closing
      removeTestDir(dir)
    }
  })
})

describe('SQLite store: a database from before readings kept their enterprise', () => {
  it("fills the new column from the stored envelopes, so a moved sensor's old readings stay its old owner's", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gridwatch-store-migrate-'))
    const path = join(dir, 'events.db')
    try {
      const f = new EnvelopeFactory('gw-migrate', 'o-migrate')
      const t0 = Date.UTC(2026, 10, 26, 10)
      const store = new SqliteStore(path)
      await store.open()
      await store.write([f.reading('gas-moved', t0, 1, 'gas', '%LEL', 'ent-a'), f.reading('gas-moved', t0 + 1, 2, 'gas', '%LEL', 'ent-b')])
      await store.close()
      // The readings table as it was before: no enterprise column.
      const db = new Database(path)
      db.exec('ALTER TABLE readings DROP COLUMN enterprise')
      db.close()

      const reopened = new SqliteStore(path)
      await reopened.open()
      try {
        const range = { device: 'gas-moved', from: t0, to: t0 + 1, limit: 10 }
        expect((await reopened.readings({ ...range, enterprises: ['ent-a'] })).map((p) => p.value)).toEqual([1])
        expect((await reopened.readings({ ...range, enterprises: ['ent-b'] })).map((p) => p.value)).toEqual([2])
        // New readings carry theirs too.
        await reopened.write([f.reading('gas-moved', t0 + 2, 3, 'gas', '%LEL', 'ent-b')])
        expect((await reopened.readings({ ...range, to: t0 + 2, enterprises: ['ent-b'] })).map((p) => p.value)).toEqual([2, 3])
      } finally {
        await reopened.close()
      }
    } finally {
      removeTestDir(dir)
    }
  })
})
