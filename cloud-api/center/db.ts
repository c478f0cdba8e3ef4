/**
 * The center database: the linked-service center's own working state, in one SQLite file next to
 * the API. The event store (InfluxDB) holds what the field reported; this holds what the center
 * decided and who may ask:
 *
 *   users, tokens        people and credentials (hashes only)
 *   gateways             gateways managed at run time (config-declared ones live in the config)
 *   gateway_health       last seen, backlog reported, version, per gateway
 *   devices              which office and enterprise a device belongs to, and its latest readings
 *   cases                alerts and incidents with their lifecycle state (authoritative)
 *   transitions          every lifecycle step (the audit trail; copied to the event store)
 *   feed                 what the live stream announced, for Last-Event-ID replay
 *
 * One process owns the file (WAL, synchronous=FULL): a staff action is answered only once it is
 * on disk, and two concurrent actions are serialized by the single writer.
 */
import { randomBytes } from 'node:crypto'
import Database from 'better-sqlite3'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'

export type CenterDb = Database.Database

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    scope TEXT NOT NULL,
    password_hash TEXT,
    created_at INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
  ) STRICT;
  CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    owner_kind TEXT NOT NULL CHECK (owner_kind IN ('user', 'gateway')),
    owner TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('session', 'api', 'gateway')),
    label TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
  ) STRICT;
  CREATE INDEX IF NOT EXISTS tokens_by_owner ON tokens (owner_kind, owner);
  CREATE TABLE IF NOT EXISTS gateways (
    id TEXT PRIMARY KEY,
    office TEXT NOT NULL,
    created_at INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE IF NOT EXISTS gateway_health (
    id TEXT PRIMARY KEY,
    office TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    version TEXT,
    backlog INTEGER,
    batches INTEGER NOT NULL,
    envelopes INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE IF NOT EXISTS devices (
    id TEXT NOT NULL,
    office TEXT NOT NULL,
    enterprise TEXT,
    -- JSON object: enterprises it belonged to before this one (FieldIndex, DeviceInfo.former)
    former TEXT NOT NULL DEFAULT '{}',
    -- the newest envelope that stated the owner: its gateway, sequence and time (FieldIndex, DeviceInfo.owner)
    owner_gateway TEXT NOT NULL DEFAULT '',
    owner_seq INTEGER NOT NULL DEFAULT 0,
    owner_ts INTEGER NOT NULL DEFAULT 0,
    gateway TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    status TEXT,
    latest TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (office, id)
  ) STRICT;
  CREATE TABLE IF NOT EXISTS cases (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('alert', 'incident')),
    office TEXT NOT NULL,
    enterprise TEXT,
    device TEXT NOT NULL,
    gateway TEXT NOT NULL,
    type TEXT NOT NULL,
    severity TEXT NOT NULL,
    level TEXT NOT NULL,
    state TEXT NOT NULL,
    raised_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    cleared_at INTEGER,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    assigned_at INTEGER,
    assigned_to TEXT,
    resolved_at INTEGER,
    closed_at INTEGER,
    escalations INTEGER NOT NULL DEFAULT 0,
    ack_due INTEGER,
    last_seq INTEGER NOT NULL,
    version INTEGER NOT NULL,
    detail TEXT NOT NULL
  ) STRICT;
  CREATE INDEX IF NOT EXISTS cases_open ON cases (state, raised_at) WHERE state <> 'closed';
  CREATE INDEX IF NOT EXISTS cases_by_time ON cases (raised_at);
  CREATE INDEX IF NOT EXISTS cases_due ON cases (ack_due) WHERE ack_due IS NOT NULL;
  CREATE TABLE IF NOT EXISTS transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    state TEXT NOT NULL,
    note TEXT,
    department TEXT,
    level TEXT,
    flushed INTEGER NOT NULL DEFAULT 0
  ) STRICT;
  CREATE INDEX IF NOT EXISTS transitions_by_case ON transitions (case_id, seq);
  CREATE INDEX IF NOT EXISTS transitions_unflushed ON transitions (seq) WHERE flushed = 0;
  -- One row: this database's own id, made when it is created, so that ids the center writes
  -- elsewhere (audit rows in the event store) stay unique if the database is ever made anew.
  CREATE TABLE IF NOT EXISTS center_identity (one INTEGER PRIMARY KEY CHECK (one = 1), epoch TEXT NOT NULL) STRICT;
  -- the key of the live stream's event ids (cloud-api/live/event-ids.ts); never leaves the database
  CREATE TABLE IF NOT EXISTS event_id_key (one INTEGER PRIMARY KEY CHECK (one = 1), key BLOB NOT NULL) STRICT;
  CREATE TABLE IF NOT EXISTS feed (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    event TEXT NOT NULL,
    office TEXT NOT NULL,
    enterprise TEXT,
    type TEXT,
    kind TEXT,
    data TEXT NOT NULL
  ) STRICT;
  -- a console's replay reads its own offices' events only (Feed.since)
  CREATE INDEX IF NOT EXISTS feed_by_office ON feed (office, seq);
`

const VERSION = 3

/**
 * - Version 0 (before user_version was kept) indexed devices by id alone; devices is a cache
 *   rebuilt from ingest, so it is simply made again.
 * - Versions 1 and 2 had no former owners or owner position (a short-lived version 2 had a
 *   `former_enterprises` list instead): the columns are added when missing, a list is carried
 *   over, and the owner position starts unknown, so the next envelope from the device's gateway
 *   that states an owner is taken as the newest. Decided by columns, not only by the number: a
 *   database an older binary wrote to after an upgrade (it sets user_version back) is repaired
 *   the same way.
 */
function migrate(db: CenterDb): void {
  const version = db.pragma('user_version', { simple: true }) as number
  if (version < 1) db.exec('DROP TABLE IF EXISTS devices')
  const columns = new Set(db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('devices')").all().map((c) => c.name))
  if (columns.size === 0 || version >= VERSION) return
  db.transaction(() => {
    const add = (name: string, definition: string) => {
      if (!columns.has(name)) db.exec(`ALTER TABLE devices ADD COLUMN ${name} ${definition}`)
    }
    add('former', "TEXT NOT NULL DEFAULT '{}'")
    add('owner_gateway', "TEXT NOT NULL DEFAULT ''")
    add('owner_seq', 'INTEGER NOT NULL DEFAULT 0')
    add('owner_ts', 'INTEGER NOT NULL DEFAULT 0')
    if (columns.has('former_enterprises')) {
      const rows = db.prepare<[], { office: string; id: string; list: string; former: string; last_seen: number }>('SELECT office, id, former_enterprises AS list, former, last_seen FROM devices').all()
      const update = db.prepare('UPDATE devices SET former = ? WHERE office = ? AND id = ?')
      for (const r of rows) {
        const former = JSON.parse(r.former) as Record<string, unknown>
        for (const e of JSON.parse(r.list) as string[]) former[e] ??= { until: r.last_seen, latest: {} }
        update.run(JSON.stringify(former), r.office, r.id)
      }
    }
    db.prepare('UPDATE devices SET owner_gateway = gateway, owner_seq = 0, owner_ts = 0').run()
  })()
}

/** Opens (creating if needed) the center database. `:memory:` gives a throwaway one for tests. */
export function openCenterDb(path: string): CenterDb {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.pragma('busy_timeout = 5000')
  migrate(db)
  db.exec(SCHEMA)
  db.pragma(`user_version = ${VERSION}`)
  db.prepare('INSERT OR IGNORE INTO center_identity (one, epoch) VALUES (1, ?)').run(randomBytes(6).toString('hex'))
  db.prepare('INSERT OR IGNORE INTO event_id_key (one, key) VALUES (1, ?)').run(randomBytes(16))
  return db
}

/** This center database's own id (see center_identity). */
export function centerEpoch(db: CenterDb): string {
  return (db.prepare('SELECT epoch FROM center_identity').get() as { epoch: string }).epoch
}

/** The key of the live stream's event ids (see event_id_key). */
export function eventIdKey(db: CenterDb): Buffer {
  return (db.prepare('SELECT key FROM event_id_key').get() as { key: Buffer }).key
}
