/**
 * SQLite settings shared by the databases of the gateway and the broker.
 */
import type Database from 'better-sqlite3'

/**
 * The page cache one gateway-side connection may hold, in KiB: SQLite's own default.
 *
 * better-sqlite3 builds SQLite with SQLITE_DEFAULT_CACHE_SIZE=-16000, so every connection may
 * cache 16 MB of pages, and under sustained ingest each one fills its cache. The gateway has
 * several (outbox, raw readings, the embedded broker's sessions, and the checkpoint thread's
 * own). bench:gateway, full runs back to back: peak RSS 152 MB with the 16 MB default and 131 MB
 * with 2 MB, at the same rate (47,249 and 49,040 msgs/s). These tables are append-mostly: the
 * pages a commit touches are the B-tree's edges, which fit in 2 MB, and a cold page is one read
 * from the OS page cache away.
 */
export const PAGE_CACHE_KIB = 2000

/** Caps a connection's page cache (PRAGMA cache_size takes KiB as a negative number). */
export function limitPageCache(db: Database.Database, kib = PAGE_CACHE_KIB): void {
  db.pragma(`cache_size = -${kib}`)
}
