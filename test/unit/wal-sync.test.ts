import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { WalSync, type SyncFn } from '../../common/wal-sync.ts'
import { removeTestDir } from '../helpers/temp.ts'

/** A sync the test completes by hand, to watch which callers each one covers. */
function manualSync() {
  const pending: ((err: NodeJS.ErrnoException | null) => void)[] = []
  const sync: SyncFn = (_fd, done) => void pending.push(done)
  return { sync, pending, finish: (err: NodeJS.ErrnoException | null = null) => pending.shift()!(err) }
}

/** Settles pending promise callbacks and I/O callbacks. */
const tick = () => new Promise((resolve) => setImmediate(resolve))

describe('WalSync', () => {
  let dir: string | undefined
  let db: Database.Database | undefined
  afterEach(() => {
    db?.close()
    db = undefined
    if (dir) removeTestDir(dir)
    dir = undefined
  })

  /** A WAL database with one commit made, so its -wal file exists. */
  function walDatabase(): string {
    dir = mkdtempSync(join(tmpdir(), 'gw-walsync-'))
    const path = join(dir, 'test.db')
    db = new Database(path)
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    db.exec('CREATE TABLE t (x)')
    return path
  }

  it('resolves a caller only after a sync that started after its call', async () => {
    const { sync, pending, finish } = manualSync()
    const wal = new WalSync(walDatabase(), sync)
    const settled: string[] = []
    const a = wal.durable().then(() => settled.push('a'))
    await tick()
    expect(pending.length).toBe(1)
    // b and c call while a's sync runs: it may have started before their commits, so it is not theirs.
    const b = wal.durable().then(() => settled.push('b'))
    const c = wal.durable().then(() => settled.push('c'))
    finish()
    await a
    await tick()
    expect(settled).toEqual(['a'])
    // One sync covers both late callers.
    expect(pending.length).toBe(1)
    finish()
    await Promise.all([b, c])
    expect(settled).toEqual(['a', 'b', 'c'])
    expect(wal.syncs).toBe(2)
    await wal.close()
  })

  it('rejects every later caller once a sync has failed: a later sync may pass over data the failed one lost', async () => {
    const { sync, pending, finish } = manualSync()
    const wal = new WalSync(walDatabase(), sync)
    const failed = wal.durable()
    await tick()
    const waiting = wal.durable()
    finish(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }))
    await expect(failed).rejects.toThrow('EIO')
    await expect(waiting).rejects.toThrow('needs a restart')
    await expect(wal.durable()).rejects.toThrow('needs a restart')
    // No sync was asked for after the failure: nothing may be reported durable on its word.
    expect(pending).toHaveLength(0)
    expect(wal.failure?.message).toContain('EIO')
    await wal.close()
  })

  it('closes its descriptor only after the running sync returns', async () => {
    const { sync, finish } = manualSync()
    const wal = new WalSync(walDatabase(), sync)
    const durable = wal.durable()
    await tick()
    let closed = false
    const closing = wal.close().then(() => (closed = true))
    await tick()
    expect(closed).toBe(false)
    finish()
    await durable
    await closing
    expect(closed).toBe(true)
    await expect(wal.durable()).rejects.toThrow('closed')
  })

  it('fsyncs a real WAL file, and needs nothing for an in-memory database', async () => {
    const path = walDatabase()
    db!.prepare('INSERT INTO t VALUES (?)').run(1)
    const wal = new WalSync(path)
    await wal.durable()
    await wal.durable()
    expect(wal.syncs).toBe(2)
    await wal.close()

    const memory = new WalSync(':memory:')
    await memory.durable()
    expect(memory.syncs).toBe(0)
    await memory.close()
  })
})
