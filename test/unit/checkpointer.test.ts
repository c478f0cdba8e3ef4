import { mkdtempSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { Checkpointer, checkpointThreadLoad, type CheckpointResult } from '../../common/checkpointer.ts'
import { removeTestDir } from '../helpers/temp.ts'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) removeTestDir(d)
})

function database(): { db: Database.Database; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'gridwatch-ckpt-'))
  dirs.push(dir)
  const path = join(dir, 'x.db')
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.exec('CREATE TABLE t (v TEXT)')
  return { db, path }
}

function firstResult(): { seen: Promise<CheckpointResult>; onResult: (r: CheckpointResult) => void } {
  let onResult!: (r: CheckpointResult) => void
  const seen = new Promise<CheckpointResult>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no checkpoint result within 5 s')), 5000)
    onResult = (r) => {
      clearTimeout(timer)
      resolve(r)
    }
  })
  return { seen, onResult }
}

describe('Checkpointer', () => {
  it('serves several databases from one thread, each with its own results, and ends the thread with the last', async () => {
    const a = database()
    const b = database()
    const ra = firstResult()
    const rb = firstResult()
    const ca = new Checkpointer(a.path, 50, ra.onResult, { db: a.db })
    const cb = new Checkpointer(b.path, 50, rb.onResult, { db: b.db })
    expect(checkpointThreadLoad()).toEqual({ threads: 1, databases: 2 })
    // Automatic checkpoints are off for the owners: the WAL grows until the thread copies it.
    expect(a.db.pragma('wal_autocheckpoint', { simple: true })).toBe(0)
    const insert = a.db.prepare('INSERT INTO t VALUES (?)')
    for (let i = 0; i < 2000; i++) insert.run('x'.repeat(500))
    b.db.prepare('INSERT INTO t VALUES (?)').run('y')
    const [resultA, resultB] = await Promise.all([ra.seen, rb.seen])
    expect(resultA.ok).toBe(true)
    expect(resultB.ok).toBe(true)
    expect(resultA.log).toBeGreaterThan(resultB.log!)
    expect(statSync(a.path).size).toBeGreaterThan(500 * 1000)
    await ca.close()
    expect(checkpointThreadLoad()).toEqual({ threads: 1, databases: 1 })
    await cb.close()
    expect(checkpointThreadLoad()).toEqual({ threads: 0, databases: 0 })
    a.db.close()
    b.db.close()
  })

  it('reports a database it cannot open, and keeps serving the others', async () => {
    const good = database()
    const rGood = firstResult()
    const rBad = firstResult()
    const cGood = new Checkpointer(good.path, 50, rGood.onResult)
    const cBad = new Checkpointer(join(dirs[0], 'missing.db'), 50, rBad.onResult)
    const bad = await rBad.seen
    expect(bad.ok).toBe(false)
    expect(bad.error).toMatch(/directory does not exist|unable to open/)
    expect((await rGood.seen).ok).toBe(true)
    await cBad.close()
    await cGood.close()
    good.db.close()
  })
})
