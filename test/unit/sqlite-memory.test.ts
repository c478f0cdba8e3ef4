import { join } from 'node:path'
import type Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { SqlitePersistence } from '../../broker/persistence.ts'
import { PAGE_CACHE_KIB } from '../../common/sqlite.ts'
import { Outbox } from '../../gateway/outbox/outbox.ts'
import { RawStore } from '../../gateway/raw/raw-store.ts'
import { testTempDir } from '../helpers/temp.ts'

const cacheKib = (db: Database.Database) => -Number(db.pragma('cache_size', { simple: true }))

describe('page cache of the gateway and broker databases', () => {
  it("is SQLite's own 2 MB on every connection, not better-sqlite3's 16 MB", async () => {
    const dir = testTempDir('gridwatch-cache-')
    const outbox = new Outbox({ path: join(dir, 'outbox.db'), gatewayId: 'gw-1' })
    const raw = new RawStore(join(dir, 'raw.db'), 30)
    const sessions = new SqlitePersistence({ path: join(dir, 'broker.db') })
    try {
      expect(PAGE_CACHE_KIB).toBe(2000)
      expect(cacheKib(outbox.db)).toBe(PAGE_CACHE_KIB)
      expect(cacheKib((raw as unknown as { db: Database.Database }).db)).toBe(PAGE_CACHE_KIB)
      expect(cacheKib((sessions as unknown as { db: Database.Database }).db)).toBe(PAGE_CACHE_KIB)
    } finally {
      outbox.close()
      raw.close()
      await sessions.destroy()
    }
  })
})
