import { execFile } from 'node:child_process'
import { mkdtempSync, readlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { promisify } from 'node:util'
import type { Aedes } from 'aedes'
import Database from 'better-sqlite3'
import mqemitter from 'mqemitter'
import { afterEach, describe, expect, it } from 'vitest'
import { SqlitePersistence } from '../../broker/persistence.ts'
import type { SyncFn } from '../../common/wal-sync.ts'
import { removeTestDir } from '../helpers/temp.ts'

const run = promisify(execFile)

function fakeBroker(id: string): Aedes {
  const mq = mqemitter()
  return { id, mq, counter: 0, publish: mq.emit.bind(mq), subscribe: mq.on.bind(mq), unsubscribe: mq.removeListener.bind(mq) } as unknown as Aedes
}

async function drain<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const item of stream) out.push(item)
  return out
}

describe('SQLite broker persistence', () => {
  it('passes aedes-persistence\'s abstract test suite', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', 'test/broker/persistence-abstract.node.ts'], {
      cwd: process.cwd(),
      maxBuffer: 16 * 1024 * 1024,
    })
    const count = (name: string) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(stdout)?.[1] ?? NaN)
    expect(count('fail')).toBe(0)
    expect(count('pass')).toBeGreaterThanOrEqual(50)
    expect(count('pass')).toBe(count('tests'))
  }, 60_000)

  describe('across a restart', () => {
    let dir: string | undefined
    afterEach(() => {
      if (dir) removeTestDir(dir)
    })

    it('restores subscriptions, queued QoS 1 messages in order, in-flight ids, retained messages, QoS 2 state and Wills', async () => {
      dir = mkdtempSync(join(tmpdir(), 'gw-persist-'))
      const path = join(dir, 'broker.db')
      const first = new SqlitePersistence({ path })
      await first.setup(fakeBroker('broker-a'))
      const client = { id: 'phone-7' }
      await first.addSubscriptions(client, [{ topic: 'cmd/phone-7/#', qos: 1 }])
      const packet = (n: number) =>
        ({ cmd: 'publish', topic: 'cmd/phone-7/task', payload: Buffer.from(`task ${n}`), qos: 1, retain: false, dup: false, brokerId: 'broker-a', brokerCounter: n }) as never
      for (let n = 1; n <= 5; n++) await first.outgoingEnqueueCombi([{ clientId: 'phone-7' }], packet(n))
      // Message 1 went out with packet id 11 and was acknowledged; message 2 is in flight as 12.
      await first.outgoingUpdate(client, { ...(packet(1) as object), messageId: 11 } as never)
      await first.outgoingClearMessageId(client, { messageId: 11 } as never)
      await first.outgoingUpdate(client, { ...(packet(2) as object), messageId: 12 } as never)
      await first.storeRetained({ cmd: 'publish', topic: 'cmd/phone-7/route', payload: Buffer.from('R1'), qos: 0, retain: true, dup: false } as never)
      await first.incomingStorePacket(client, { cmd: 'publish', topic: 'dev/phone-7/scan', payload: Buffer.from('q2'), qos: 2, messageId: 99 } as never)
      await first.putWill(client, { cmd: 'publish', topic: 'dev/phone-7/status', payload: Buffer.from('offline'), qos: 1, retain: false } as never)
      // No destroy(): the process dies here. Every promise above resolved, so all of it is committed.

      const second = new SqlitePersistence({ path })
      await second.setup(fakeBroker('broker-b'))
      expect(await second.subscriptionsByClient(client)).toEqual([{ topic: 'cmd/phone-7/#', qos: 1 }])
      expect((await second.subscriptionsByTopic('cmd/phone-7/task')).map((s: { clientId: string }) => s.clientId)).toEqual(['phone-7'])
      const queued = (await drain(second.outgoingStream(client))) as { payload: Buffer; messageId?: number }[]
      expect(queued.map((p) => p.payload.toString())).toEqual(['task 2', 'task 3', 'task 4', 'task 5'])
      expect(queued[0].messageId).toBe(12)
      const retained = (await drain(second.createRetainedStream('cmd/phone-7/#'))) as { payload: Buffer }[]
      expect(retained.map((p) => p.payload.toString())).toEqual(['R1'])
      expect((await second.incomingGetPacket(client, { messageId: 99 })).payload.toString()).toBe('q2')
      // The Will still belongs to the dead broker, so the new one will fire it.
      const wills = (await drain(second.streamWill({ 'broker-b': Date.now() }))) as { topic: string; brokerId: string }[]
      expect(wills.map((w) => [w.topic, w.brokerId])).toEqual([['dev/phone-7/status', 'broker-a']])
      await second.destroy()
    })

    it('keeps a publish queued ahead of its PUBACK through a crash before its enqueue', async () => {
      dir = mkdtempSync(join(tmpdir(), 'gw-persist-'))
      const path = join(dir, 'broker.db')
      const first = new SqlitePersistence({ path })
      await first.setup(fakeBroker('broker-a'))
      await first.addSubscriptions({ id: 'phone-7' }, [{ topic: 'cmd/phone-7/#', qos: 1 }])
      // What the broker does before the PUBACK; the process dies before Aedes enqueues it.
      await first.queueAhead({ cmd: 'publish', topic: 'cmd/phone-7/task', payload: Buffer.from('walk R2'), qos: 1, retain: false, dup: false } as never)

      const second = new SqlitePersistence({ path })
      await second.setup(fakeBroker('broker-b'))
      const queued = (await drain(second.outgoingStream({ id: 'phone-7' }))) as { payload: Buffer; brokerId: string }[]
      expect(queued.map((p) => [p.payload.toString(), p.brokerId])).toEqual([['walk R2', 'broker-b']])
      await second.destroy()
      // Queued once: a third start finds the same single row.
      const third = new SqlitePersistence({ path })
      await third.setup(fakeBroker('broker-c'))
      expect(((await drain(third.outgoingStream({ id: 'phone-7' }))) as unknown[]).length).toBe(1)
      await third.destroy()
    })
  })

  describe('queued messages left in the table by versions before the journal', () => {
    let dir: string | undefined
    afterEach(() => {
      if (dir) removeTestDir(dir)
    })

    it('are delivered first, in order, and cleared from the table when acknowledged; new ones go to the journal', async () => {
      dir = mkdtempSync(join(tmpdir(), 'gw-persist-'))
      const path = join(dir, 'broker.db')
      const old = new SqlitePersistence({ path })
      await old.setup(fakeBroker('broker-a'))
      await old.addSubscriptions({ id: 'gw' }, [{ topic: 'dev/+/reading', qos: 1 }])
      await old.destroy()
      // What a version before 2026-11-27 left queued: two rows of the table, one already sent as 7.
      const db = new Database(path)
      const put = db.prepare('INSERT INTO outgoing (client_id, broker_id, broker_counter, message_id, payload, meta) VALUES (?, ?, ?, ?, ?, ?)')
      const metaOf = (id?: number) => JSON.stringify({ cmd: 'publish', topic: 'dev/d1/reading', qos: 1, retain: false, dup: false, brokerId: 'broker-a', brokerCounter: 1, ...(id ? { messageId: id } : {}) })
      put.run('gw', 'broker-a', 1, 7, Buffer.from('old 1'), metaOf(7))
      put.run('gw', 'broker-a', 2, null, Buffer.from('old 2'), metaOf())
      db.close()

      const first = new SqlitePersistence({ path })
      await first.setup(fakeBroker('broker-b'))
      const fresh = { cmd: 'publish', topic: 'dev/d1/reading', payload: Buffer.from('new'), qos: 1, retain: false, dup: false, brokerId: 'broker-b', brokerCounter: 100 } as never
      await first.outgoingEnqueueCombi([{ clientId: 'gw' }], fresh)
      const queued = (await drain(first.outgoingStream({ id: 'gw' }))) as (Record<string, unknown> & { payload: Buffer; messageId?: number })[]
      expect(queued.map((p) => [p.payload.toString(), p.messageId])).toEqual([
        ['old 1', 7],
        ['old 2', undefined],
        ['new', undefined],
      ])
      // Acknowledge the first; send and acknowledge the second; the third stays queued.
      await first.outgoingClearMessageId({ id: 'gw' }, { messageId: 7 } as never)
      await first.outgoingUpdate({ id: 'gw' }, { ...queued[1], messageId: 8 } as never)
      await first.outgoingClearMessageId({ id: 'gw' }, { messageId: 8 } as never)
      await first.destroy()
      const check = new Database(path, { readonly: true })
      expect(check.prepare('SELECT count(*) AS n FROM outgoing').get()).toEqual({ n: 0 })
      check.close()

      const second = new SqlitePersistence({ path })
      await second.setup(fakeBroker('broker-c'))
      expect(((await drain(second.outgoingStream({ id: 'gw' }))) as { payload: Buffer }[]).map((p) => p.payload.toString())).toEqual(['new'])
      await second.destroy()
    })
  })

  describe('durability of each write', () => {
    let dir: string | undefined
    afterEach(() => {
      if (dir) removeTestDir(dir)
    })

    it('answers a PUBACK-bound write only after its fsync; a QoS 1 delivery\'s packet id and clearing only after their commit', async () => {
      dir = mkdtempSync(join(tmpdir(), 'gw-persist-'))
      const syncs: ((err: NodeJS.ErrnoException | null) => void)[] = []
      const syncWal: SyncFn = (_fd, done) => void syncs.push(done)
      const sessions = new SqlitePersistence({ path: join(dir, 'broker.db'), syncWal })
      await sessions.setup(fakeBroker('broker-a'))
      /** The next fsync the persistence asks for, once it asks (within 2 s). */
      const nextSync = async () => {
        const deadline = Date.now() + 2000
        while (syncs.length === 0 && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve))
        expect(syncs.length).toBe(1)
        return syncs.shift()!
      }
      const subscribed = sessions.addSubscriptions({ id: 'gw' }, [{ topic: 'dev/+/reading', qos: 1 }])
      ;(await nextSync())(null)
      await subscribed

      const publish = { cmd: 'publish', topic: 'dev/d1/reading', payload: Buffer.from('21.5'), qos: 1, retain: false, dup: false } as never
      let acknowledged = false
      const ahead = sessions.queueAhead(publish).then(() => (acknowledged = true))
      const fsyncReturns = await nextSync()
      // Committed, and the fsync asked for has not returned: the publisher must not have its PUBACK yet.
      await new Promise((resolve) => setImmediate(resolve))
      expect(acknowledged).toBe(false)
      fsyncReturns(null)
      await ahead
      expect(acknowledged).toBe(true)

      const queued = { ...(publish as object), brokerId: 'broker-a', brokerCounter: 1 } as never
      await sessions.outgoingEnqueueCombi([{ clientId: 'gw' }], queued)
      // The delivery's packet id and its clearing resolve at their commit, with no fsync of their own.
      await sessions.outgoingUpdate({ id: 'gw' }, { ...(queued as object), messageId: 7 } as never)
      await sessions.outgoingClearMessageId({ id: 'gw' }, { messageId: 7 } as never)
      expect(syncs.length).toBe(0)
      expect(await drain(sessions.outgoingStream({ id: 'gw' }))).toEqual([])

      const destroyed = sessions.destroy()
      await new Promise((resolve) => setImmediate(resolve))
      for (const done of syncs.splice(0)) done(null)
      await destroyed
    })

    it('syncs every file written since its last sync: an owner claim reaches the disk with the next PUBACK-bound commit', async () => {
      dir = mkdtempSync(join(tmpdir(), 'gw-persist-'))
      const synced: string[] = []
      const syncWal: SyncFn = (fd, done) => {
        synced.push(basename(readlinkSync(`/proc/self/fd/${fd}`)))
        done(null)
      }
      const sessions = new SqlitePersistence({ path: join(dir, 'broker.db'), syncWal })
      await sessions.setup(fakeBroker('broker-a'))
      await sessions.addSubscriptions({ id: 'gw' }, [{ topic: 'dev/+/reading', qos: 1 }])
      synced.length = 0
      // Waits for its commit only: no sync of its own.
      await sessions.setSessionOwner('gw', 'gw')
      expect(synced).toEqual([])
      // This commit writes only the queue journal, and must sync the database's WAL as well.
      await sessions.queueAhead({ cmd: 'publish', topic: 'dev/d1/reading', payload: Buffer.from('21.5'), qos: 1, retain: false, dup: false } as never)
      expect(synced.sort()).toEqual(['broker.db-wal', 'broker.db.queue'])
      await sessions.destroy()
    })

    it('acknowledges nothing more after a failed fsync, and says so once', async () => {
      dir = mkdtempSync(join(tmpdir(), 'gw-persist-'))
      const errors: { code?: string }[] = []
      const logger = { error: (o: { code?: string }) => void errors.push(o), warn: () => {}, info: () => {}, debug: () => {} } as never
      let fail = false
      const syncWal: SyncFn = (_fd, done) => setImmediate(() => done(fail ? Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }) : null))
      const sessions = new SqlitePersistence({ path: join(dir, 'broker.db'), syncWal, logger })
      await sessions.setup(fakeBroker('broker-a'))
      await sessions.addSubscriptions({ id: 'gw' }, [{ topic: 'dev/+/reading', qos: 1 }])
      const publish = (n: number) => ({ cmd: 'publish', topic: 'dev/d1/reading', payload: Buffer.from(String(n)), qos: 1, retain: false, dup: false }) as never
      await sessions.queueAhead(publish(1))
      fail = true
      // The PUBACK for this one must not go: its fsync failed.
      await expect(sessions.queueAhead(publish(2))).rejects.toThrow('EIO')
      // Nor for a later one, though a later fsync would report success over what the failed one lost.
      fail = false
      await expect(sessions.queueAhead(publish(3))).rejects.toThrow('needs a restart')
      expect(errors.filter((e) => e.code === 'BROKER_PERSISTENCE_SYNC_FAILED')).toHaveLength(1)
      await sessions.destroy()
    })
  })
})
