import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SqliteStore } from '../../cloud-api/store/sqlite-store.ts'
import { storeContract } from './store-contract.ts'

storeContract('SQLite (embedded)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gridwatch-store-'))
  const store = new SqliteStore(join(dir, 'events.db'))
  return {
    store,
    async teardown() {
      await store.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
})
