/**
 * Durable broker state: sessions, subscriptions, QoS 1/2 queues, retained messages and Wills
 * survive a broker crash or restart.
 *
 * Why this shape: aedes-persistence's in-memory implementation is the reference that its own
 * abstract test suite is written against, and it answers every query from Maps and a qlobber trie.
 * We keep it for all reads and mirror every mutation to disk: the queued QoS 1/2 messages into an
 * append-only journal of our own (broker/queue-journal.ts: a message lives one round trip, and
 * SQLite's insert, update and delete per message held the broker at about 0.7 of Mosquitto), and
 * everything else into SQLite (better-sqlite3, already the gateway's outbox engine, so no new
 * native dependency and no external server like Redis or MongoDB at a street office). At start
 * both are replayed into memory.
 *
 * Writes are group-committed: every mutation made in one turn of the event loop goes into one
 * transaction and one journal write, and each mutation's promise resolves only after they are on
 * disk. The fsyncs run on libuv's thread pool (common/wal-sync.ts), for each file written since
 * its last sync, and WAL checkpoints on a worker thread (common/checkpointer.ts), so the broker keeps
 * serving clients while the disk works. The broker waits for queueAhead() before it PUBACKs a
 * QoS 1 publish, so an acknowledged message for a persistent subscriber is on disk before the
 * publisher hears back.
 */
import { createRequire } from 'node:module'
import { Readable } from 'node:stream'
import Database from 'better-sqlite3'
import type { Statement } from 'better-sqlite3'
import type { Aedes, Client, PublishPacket } from 'aedes'
import { Checkpointer } from '../common/checkpointer.ts'
import type { Logger } from '../common/logger.ts'
import { limitPageCache } from '../common/sqlite.ts'
import { WalSync, type SyncFn } from '../common/wal-sync.ts'
import { OutgoingQueue } from './outgoing-queue.ts'
import { QueueJournal } from './queue-journal.ts'

const require = createRequire(import.meta.url)
// The reference in-memory implementation (CommonJS, no subpath typings).
const MemoryPersistence = require('aedes-persistence/asyncPersistence.js') as new (opts?: object) => MemoryApi
const AedesPacket = require('aedes-packet') as new (original: Packet, broker?: Aedes) => Packet

type Packet = PublishPacket & { brokerId?: string; brokerCounter?: number; clientId?: string; messageExpiry?: number }
type ClientRef = Pick<Client, 'id'>
interface StoredSubscription {
  topic: string
  qos: number
  rh?: number
  rap?: boolean
  nl?: boolean
  subscriptionIdentifier?: number
}

interface MemoryApi {
  setup(broker: Aedes): Promise<void>
  storeRetained(packet: Packet): Promise<void>
  addSubscriptions(client: ClientRef, subs: StoredSubscription[]): Promise<void>
  removeSubscriptions(client: ClientRef, topics: string[]): Promise<void>
  cleanSubscriptions(client: ClientRef): Promise<void>
  outgoingEnqueue(sub: { clientId: string }, packet: Packet): Promise<void>
  outgoingEnqueueCombi(subs: { clientId: string }[], packet: Packet): Promise<void>
  outgoingUpdate(client: ClientRef, packet: Packet): Promise<void>
  outgoingClearMessageId(client: ClientRef, packet: Packet): Promise<Packet | undefined>
  incomingStorePacket(client: ClientRef, packet: Packet): Promise<void>
  incomingDelPacket(client: ClientRef, packet: Packet): Promise<void>
  cleanIncoming(client: ClientRef): Promise<void>
  putWill(client: ClientRef, packet: Packet): Promise<void>
  delWill(client: ClientRef): Promise<Packet | undefined>
  destroy(): Promise<void>
  // Reads come straight from the reference implementation.
  subscriptionsByClient(client: ClientRef): Promise<StoredSubscription[]>
  subscriptionsByTopic(topic: string): Promise<(StoredSubscription & { clientId: string })[]>
  outgoingStream(client: ClientRef): Readable
  createRetainedStream(pattern: string): Readable
  incomingGetPacket(client: ClientRef, packet: Pick<Packet, 'messageId'>): Promise<Packet>
  streamWill(brokers?: Record<string, unknown>): Readable
}

export interface SqlitePersistenceOptions {
  /** SQLite file; ':memory:' for tests that do not need a restart. */
  path: string
  /**
   * 'full': a mutation's promise resolves after its group commit is fsynced (survives power
   * loss). 'normal': after the commit is written (survives a process crash, but a power cut may
   * lose the last commits); several times cheaper on slow disks.
   */
  synchronous?: 'full' | 'normal'
  /** The WAL fsync (tests watch its ordering); fs.fdatasync by default. */
  syncWal?: SyncFn
  logger?: Logger
}

interface Deferred {
  promise: Promise<void>
  resolve: () => void
  reject: (err: unknown) => void
}

function deferred(): Deferred {
  const d = {} as Deferred
  d.promise = new Promise<void>((resolve, reject) => {
    d.resolve = resolve
    d.reject = reject
  })
  return d
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, payload BLOB NOT NULL, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (client_id TEXT NOT NULL, topic TEXT NOT NULL, record TEXT NOT NULL, PRIMARY KEY (client_id, topic));
CREATE TABLE IF NOT EXISTS outgoing (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, client_id TEXT NOT NULL, broker_id TEXT, broker_counter INTEGER,
  message_id INTEGER, payload BLOB NOT NULL, meta TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outgoing_client ON outgoing (client_id, seq);
CREATE TABLE IF NOT EXISTS incoming (client_id TEXT NOT NULL, message_id INTEGER NOT NULL, payload BLOB NOT NULL, meta TEXT NOT NULL, PRIMARY KEY (client_id, message_id));
CREATE TABLE IF NOT EXISTS wills (client_id TEXT PRIMARY KEY, payload BLOB NOT NULL, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS session_owners (client_id TEXT PRIMARY KEY, owner TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (client_id TEXT PRIMARY KEY);
`

export class SqlitePersistence extends MemoryPersistence {
  private readonly db: Database.Database
  private readonly sql: Record<string, Statement>
  private ops: (() => void)[] = []
  /**
   * The next group commit, with the promises its mutations wait on: `durable` resolves when the
   * commit is on disk, `written` when it is in the WAL (survives a process crash, not a power cut).
   */
  private batch: { durable?: Deferred; written?: Deferred } | undefined
  /**
   * Row of each queued packet, by client, broker and broker counter (how Aedes names a queued
   * message). Updates and clears then touch one row by primary key: no secondary index to keep
   * up on every insert, and no index search per acknowledgement.
   */
  private readonly rowOf = new Map<string, number>()
  /** Each persistent session's outgoing QoS 1/2 messages, in memory. */
  private readonly outgoing = new Map<string, OutgoingQueue>()
  /**
   * Queue rows written ahead for a publish, by payload (Aedes hands the enqueue a new packet
   * object that shares the parsed payload Buffer), then by subscriber. See queueAhead().
   */
  private readonly ahead = new WeakMap<object, Map<string, number>[]>()
  private broker: Aedes | undefined
  private closed = false
  /** Makes group commits durable off the event loop; absent for 'normal' and ':memory:'. */
  private readonly walSync: WalSync | undefined
  /**
   * The queued QoS 1/2 messages (broker/queue-journal.ts), numbered here. Rows of the `outgoing`
   * table are from versions before 2026-11-27 (`legacy`): they stay there until acknowledged.
   */
  private readonly queue: QueueJournal
  private readonly queueSync: WalSync | undefined
  private readonly legacy = new Set<number>()
  private nextSeq = 1
  /**
   * A failed journal write or transaction: like a failed fsync, final until a restart. (After a
   * failed transaction the journal's records of that batch would still go out with the next.)
   */
  private queueFailure: Error | undefined
  /** Files written since their last sync was asked for: every durable commit syncs them all. */
  private walDirty = false
  private queueDirty = false
  private readonly totalChanges: Statement
  private readonly checkpointer: Checkpointer | undefined
  private readonly logger: Logger | undefined
  private syncFailureLogged = false

  constructor(options: SqlitePersistenceOptions) {
    super()
    this.db = new Database(options.path)
    limitPageCache(this.db)
    this.db.pragma('journal_mode = WAL')
    // NORMAL either way: for 'full', walSync adds the fsync before any promise resolves (see
    // common/wal-sync.ts), so FULL's fsync on the event loop would only be a second one.
    this.db.pragma('synchronous = NORMAL')
    this.db.exec(SCHEMA)
    this.logger = options.logger
    const onDisk = options.path !== ':memory:' && options.path !== ''
    if (onDisk && options.synchronous !== 'normal') this.walSync = new WalSync(options.path, options.syncWal)
    const queuePath = onDisk ? `${options.path}.queue` : undefined
    this.queue = new QueueJournal(queuePath)
    if (this.queue.truncatedBytes > 0) {
      options.logger?.warn({ code: 'BROKER_QUEUE_TAIL_CUT', bytes: this.queue.truncatedBytes }, 'broker persistence: cut a torn write off the queue journal (never acknowledged)')
    }
    if (queuePath && options.synchronous !== 'normal') {
      // The journal syncs its current descriptor itself: a rewrite replaces the file.
      this.queueSync = new WalSync(queuePath, (_fd, done) => this.queue.sync(done, options.syncWal), null)
    }
    this.totalChanges = this.db.prepare('SELECT total_changes()').pluck()
    // Checkpoints on the shared worker thread, never inside a commit on the event loop.
    if (onDisk) {
      this.checkpointer = new Checkpointer(
        options.path,
        1000,
        (r) => {
          if (!r.ok) options.logger?.warn({ code: 'BROKER_CHECKPOINT_FAILED', error: r.error }, 'broker persistence: WAL checkpoint failed')
        },
        { db: this.db },
      )
    }
    const prepare = (text: string) => this.db.prepare(text)
    this.sql = {
      retainedPut: prepare('INSERT OR REPLACE INTO retained (topic, payload, meta) VALUES (?, ?, ?)'),
      retainedDel: prepare('DELETE FROM retained WHERE topic = ?'),
      subPut: prepare('INSERT OR REPLACE INTO subscriptions (client_id, topic, record) VALUES (?, ?, ?)'),
      subDel: prepare('DELETE FROM subscriptions WHERE client_id = ? AND topic = ?'),
      subClean: prepare('DELETE FROM subscriptions WHERE client_id = ?'),
      outSetId: prepare('UPDATE outgoing SET message_id = ? WHERE seq = ?'),
      outDelete: prepare('DELETE FROM outgoing WHERE seq = ?'),
      outReplace: prepare(
        `UPDATE outgoing SET broker_id = ?, broker_counter = ?, message_id = ?, payload = ?, meta = ?
         WHERE seq = (SELECT seq FROM outgoing WHERE client_id = ? AND message_id = ? AND broker_id IS NOT ? ORDER BY seq LIMIT 1)`,
      ),
      outRewrite: prepare('UPDATE outgoing SET broker_id = NULL, broker_counter = NULL, message_id = ?, payload = ?, meta = ? WHERE seq = ?'),
      outClear: prepare('DELETE FROM outgoing WHERE seq = (SELECT seq FROM outgoing WHERE client_id = ? AND message_id = ? ORDER BY seq LIMIT 1)'),
      inPut: prepare('INSERT OR REPLACE INTO incoming (client_id, message_id, payload, meta) VALUES (?, ?, ?, ?)'),
      inDel: prepare('DELETE FROM incoming WHERE client_id = ? AND message_id = ?'),
      inClean: prepare('DELETE FROM incoming WHERE client_id = ?'),
      willPut: prepare('INSERT OR REPLACE INTO wills (client_id, payload, meta) VALUES (?, ?, ?)'),
      willDel: prepare('DELETE FROM wills WHERE client_id = ?'),
      ownerPut: prepare('INSERT OR REPLACE INTO session_owners (client_id, owner) VALUES (?, ?)'),
      ownerDel: prepare('DELETE FROM session_owners WHERE client_id = ?'),
      sessionPut: prepare('INSERT OR IGNORE INTO sessions (client_id) VALUES (?)'),
      sessionDel: prepare('DELETE FROM sessions WHERE client_id = ?'),
    }
  }

  /**
   * Who each session's client id belongs to (see sessionOwner in broker.ts), as kept on disk:
   * read once at start, synchronously, because authentication needs it before Aedes is set up.
   */
  sessionOwners(): Map<string, string> {
    const rows = this.db.prepare('SELECT client_id, owner FROM session_owners').all() as { client_id: string; owner: string }[]
    return new Map(rows.map((r) => [r.client_id, r.owner]))
  }

  /**
   * Records (or, with undefined, forgets) a session's owner. Committed with the next group
   * commit, so before any of the session's own writes that follow it can be acknowledged.
   */
  setSessionOwner(clientId: string, owner: string | undefined): Promise<void> {
    return this.write(() => (owner === undefined ? this.sql.ownerDel.run(clientId) : this.sql.ownerPut.run(clientId, owner)), 'written')
  }

  /**
   * Client ids whose persistent session is stored, with or without subscriptions: what CONNACK's
   * session present flag reports (MQTT-3.2.2-2). Read once at start, as the owners are.
   */
  storedSessions(): Set<string> {
    const rows = this.db.prepare('SELECT client_id FROM sessions').all() as { client_id: string }[]
    return new Set(rows.map((r) => r.client_id))
  }

  /** Records that a persistent session is stored for `clientId`, or that a clean session ended it. */
  setStoredSession(clientId: string, stored: boolean): Promise<void> {
    return this.write(() => (stored ? this.sql.sessionPut.run(clientId) : this.sql.sessionDel.run(clientId)), 'written')
  }

  override async setup(broker: Aedes): Promise<void> {
    this.broker = broker
    await super.setup(broker)
    await this.restore()
  }

  /**
   * Aedes PUBACKs a QoS 1 publish before it routes it (lib/handlers/publish.js: PubAck, then
   * broker.publish), so on its own a PUBACK would promise nothing. The broker calls this from
   * `authorizePublish`, before the PUBACK: the message's queue rows for every persistent session
   * that will queue it are written and committed now. The enqueue that follows only adopts them
   * (no second write); after a crash in between, restore() finds them like any queued message.
   * Clean sessions end with the process anyway, so they cost nothing here.
   */
  async queueAhead(packet: Packet): Promise<void> {
    if (packet.qos !== 1) return
    const subs = oncePerClient(await this.subscriptionsByTopic(packet.topic))
    if (subs.length === 0) return
    const rows = new Map<string, number>()
    const key = packet.payload as unknown as object
    const pending = this.ahead.get(key)
    if (pending) pending.push(rows)
    else this.ahead.set(key, [rows])
    const payload = payloadOf(packet)
    const text = meta(packet)
    await this.write(() => {
      for (const sub of subs) {
        const seq = this.nextSeq++
        this.queue.put(seq, sub.clientId, payload, text)
        rows.set(sub.clientId, seq)
      }
    })
  }

  /** Replays the tables into the in-memory state, in their original order. */
  private async restore(): Promise<void> {
    type Row = { payload: Buffer; meta: string }
    for (const row of this.db.prepare('SELECT payload, meta FROM retained').all() as Row[]) {
      await super.storeRetained(decode(row))
    }
    const subs = new Map<string, StoredSubscription[]>()
    for (const row of this.db.prepare('SELECT client_id, topic, record FROM subscriptions').all() as { client_id: string; topic: string; record: string }[]) {
      const list = subs.get(row.client_id) ?? []
      list.push({ topic: row.topic, ...(JSON.parse(row.record) as Omit<StoredSubscription, 'topic'>) })
      subs.set(row.client_id, list)
    }
    for (const [clientId, list] of subs) await super.addSubscriptions({ id: clientId }, list)
    const outgoing = this.db.prepare('SELECT seq, client_id, message_id, payload, meta FROM outgoing ORDER BY seq').all() as (Row & {
      seq: number
      client_id: string
      message_id: number | null
    })[]
    for (const row of outgoing) this.legacy.add(row.seq)
    const legacyMax = (this.db.prepare("SELECT max(coalesce((SELECT max(seq) FROM outgoing), 0), coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'outgoing'), 0))").pluck().get() as number) ?? 0
    this.nextSeq = Math.max(legacyMax, this.queue.highestSeq) + 1
    const journaled = [...this.queue.live()].map((r) => ({ seq: r.seq, client_id: r.clientId, message_id: r.messageId, payload: r.payload, meta: r.meta }))
    for (const row of [...outgoing, ...journaled]) {
      // Every restored message gets a new identity (this broker's id, its next counter), like a
      // message published now. Rows written ahead of their enqueue (queueAhead) had none; the
      // others carry the previous run's, and Aedes restarts its counter at 0, so with a stable
      // broker id a new message would share (id, counter) with a restored one and acknowledging
      // one would clear the other.
      const stored = decode(row)
      const packet = new AedesPacket({ ...stored, brokerId: undefined, brokerCounter: undefined }, this.broker)
      this.rowOf.set(rowKey(row.client_id, packet), row.seq)
      const queue = this.queueOf(row.client_id)
      queue.enqueue(new AedesPacket(packet))
      if (row.message_id !== null) queue.update({ ...packet, messageId: row.message_id })
    }
    for (const row of this.db.prepare('SELECT client_id, payload, meta FROM incoming').all() as (Row & { client_id: string })[]) {
      await super.incomingStorePacket({ id: row.client_id }, decode(row))
    }
    for (const row of this.db.prepare('SELECT client_id, payload, meta FROM wills').all() as (Row & { client_id: string })[]) {
      // putWill stamps the current broker id; the stored one (a broker that died) must survive so
      // that Aedes fires these Wills once it sees that broker is gone. A Will of this very broker
      // id is a previous run's: with a stable id, this run's heartbeat would keep it from ever
      // firing, so it is marked as a run that is gone (broker.ts fires it after a grace period).
      const will = decode(row)
      await super.putWill({ id: row.client_id }, will)
      const storedId = (JSON.parse(row.meta) as { brokerId?: string }).brokerId
      will.brokerId = storedId !== undefined && storedId === this.broker?.id ? `${storedId}${PREVIOUS_RUN}` : storedId
    }
  }

  override async storeRetained(packet: Packet): Promise<void> {
    await super.storeRetained(packet)
    const payload = payloadOf(packet)
    await this.write(() =>
      payload.length === 0 ? this.sql.retainedDel.run(packet.topic) : this.sql.retainedPut.run(packet.topic, payload, meta(packet)),
    )
  }

  override async addSubscriptions(client: ClientRef, subs: StoredSubscription[]): Promise<void> {
    await super.addSubscriptions(client, subs)
    await this.write(() => {
      for (const { topic, ...record } of subs) this.sql.subPut.run(client.id, topic, JSON.stringify(record))
    })
  }

  override async removeSubscriptions(client: ClientRef, topics: string[]): Promise<void> {
    await super.removeSubscriptions(client, topics)
    await this.write(() => {
      for (const topic of topics) this.sql.subDel.run(client.id, topic)
    })
  }

  override async cleanSubscriptions(client: ClientRef): Promise<void> {
    await super.cleanSubscriptions(client)
    await this.write(() => this.sql.subClean.run(client.id))
  }

  // The outgoing queues are ours (broker/outgoing-queue.ts), not the reference's: same answers,
  // without its scan per delivery and scan and splice per acknowledgement.

  private queueOf(clientId: string): OutgoingQueue {
    let queue = this.outgoing.get(clientId)
    if (!queue) this.outgoing.set(clientId, (queue = new OutgoingQueue()))
    return queue
  }

  private enqueueInMemory(clientId: string, packet: Packet): void {
    // A copy, as the reference makes (aedes-packet: the packet id is cleared until delivery).
    this.queueOf(clientId).enqueue(new AedesPacket(packet))
  }

  override outgoingStream(client: ClientRef): Readable {
    return Readable.from(this.outgoing.get(client.id)?.packets() ?? [])
  }

  override async outgoingEnqueue(sub: { clientId: string }, packet: Packet): Promise<void> {
    this.enqueueInMemory(sub.clientId, packet)
    await this.write(() => this.insertOutgoing(sub.clientId, packet))
  }

  override async outgoingEnqueueCombi(all: { clientId: string }[], packet: Packet): Promise<void> {
    const subs = oncePerClient(all)
    for (const sub of subs) this.enqueueInMemory(sub.clientId, packet)
    const written = this.ahead.get(packet.payload as unknown as object)?.shift()
    const fresh = written ? subs.filter((sub) => !written.has(sub.clientId)) : subs
    if (written) {
      for (const sub of subs) {
        const seq = written.get(sub.clientId)
        if (seq === undefined) continue
        this.rowOf.set(rowKey(sub.clientId, packet), seq)
        written.delete(sub.clientId)
      }
    }
    // Left in `written`: sessions that unsubscribed in between, whose rows must go.
    if (fresh.length === 0 && (!written || written.size === 0)) return
    await this.write(() => {
      for (const sub of fresh) this.insertOutgoing(sub.clientId, packet)
      for (const seq of written?.values() ?? []) this.deleteRow(seq)
    })
  }

  override async outgoingUpdate(client: ClientRef, packet: Packet): Promise<void> {
    const queue = this.queueOf(client.id)
    // A PUBREL takes its message's place, row included: the row moves to the PUBREL's key, so
    // that its PUBCOMP deletes it by primary key and no key is left behind per QoS 2 message.
    const released = packet.brokerId === undefined && packet.brokerCounter === undefined && packet.messageId !== undefined ? queue.first(packet.messageId) : undefined
    // 'no such packet', exactly as the reference says it; then there is nothing to mirror.
    if (!queue.update(packet)) throw new Error('no such packet')
    const key = rowKey(client.id, packet)
    if (released) {
      const before = rowKey(client.id, released)
      const seq = this.rowOf.get(before)
      if (seq !== undefined) {
        this.rowOf.delete(before)
        this.rowOf.set(key, seq)
        await this.write(() => {
          if (this.legacy.has(seq)) this.sql.outRewrite.run(packet.messageId, payloadOf(packet), meta(packet), seq)
          else this.queue.rewrite(seq, packet.messageId ?? null, payloadOf(packet), meta(packet))
        }, untilFor(packet))
        return
      }
    }
    await this.write(() => {
      const seq = this.rowOf.get(key)
      if (seq !== undefined) {
        if (this.legacy.has(seq)) this.sql.outSetId.run(packet.messageId, seq)
        else if (packet.messageId !== undefined) this.queue.setMessageId(seq, packet.messageId)
        return
      }
      // The reference's other case: a packet from another broker id with the same packet id is
      // replaced (after a restart). Rare, so a search of this client's rows is fine: the table's
      // first (older), then the journal's.
      const { changes } = this.sql.outReplace.run(
        packet.brokerId,
        packet.brokerCounter,
        packet.messageId,
        payloadOf(packet),
        meta(packet),
        client.id,
        packet.messageId,
        packet.brokerId,
      )
      if (changes > 0 || packet.messageId === undefined) return
      const other = this.queue.find(client.id, packet.messageId, (row) => brokerIdOf(row.meta) !== (packet.brokerId ?? null))
      if (other) this.queue.rewrite(other.seq, packet.messageId, payloadOf(packet), meta(packet))
    }, untilFor(packet))
  }

  override async outgoingClearMessageId(client: ClientRef, packet: Packet): Promise<Packet | undefined> {
    const cleared = packet.messageId === undefined ? undefined : this.outgoing.get(client.id)?.clear(packet.messageId)
    if (!cleared) return cleared
    const key = rowKey(client.id, cleared)
    await this.write(() => {
      const seq = this.rowOf.get(key)
      if (seq === undefined) {
        // Rare: the table's rows first (older), then the journal's.
        if (this.sql.outClear.run(client.id, packet.messageId).changes > 0 || packet.messageId === undefined) return
        const row = this.queue.find(client.id, packet.messageId)
        if (row) this.queue.delete(row.seq)
        return
      }
      this.rowOf.delete(key)
      this.deleteRow(seq)
    }, untilFor(cleared))
    return cleared
  }

  override async incomingStorePacket(client: ClientRef, packet: Packet): Promise<void> {
    await super.incomingStorePacket(client, packet)
    await this.write(() => this.sql.inPut.run(client.id, packet.messageId, payloadOf(packet), meta(packet)))
  }

  override async incomingDelPacket(client: ClientRef, packet: Packet): Promise<void> {
    await super.incomingDelPacket(client, packet)
    await this.write(() => this.sql.inDel.run(client.id, packet.messageId))
  }

  override async cleanIncoming(client: ClientRef): Promise<void> {
    await super.cleanIncoming(client)
    await this.write(() => this.sql.inClean.run(client.id))
  }

  override async putWill(client: ClientRef, packet: Packet): Promise<void> {
    await super.putWill(client, packet)
    await this.write(() => this.sql.willPut.run(client.id, payloadOf(packet), meta(packet)))
  }

  override async delWill(client: ClientRef): Promise<Packet | undefined> {
    const will = await super.delWill(client)
    await this.write(() => this.sql.willDel.run(client.id))
    return will
  }

  override async destroy(): Promise<void> {
    await super.destroy()
    this.flush()
    this.closed = true
    // Waits for the last sync: its descriptor must stay open until it returns.
    await this.walSync?.close()
    await this.queueSync?.close()
    this.queue.close()
    await this.checkpointer?.close()
    this.db.close()
  }

  private insertOutgoing(clientId: string, packet: Packet): void {
    const seq = this.nextSeq++
    this.queue.put(seq, clientId, payloadOf(packet), meta(packet))
    this.rowOf.set(rowKey(clientId, packet), seq)
  }

  private deleteRow(seq: number): void {
    if (this.legacy.delete(seq)) this.sql.outDelete.run(seq)
    else this.queue.delete(seq)
  }

  /**
   * Queues a mutation for the next group commit and resolves once that commit is `durable` (on
   * disk, the default) or `written` (in the WAL; see untilFor). The mutations of one batch share
   * one promise of each kind: one allocation per commit, not one per message.
   */
  private write(op: () => void, until: 'durable' | 'written' = 'durable'): Promise<void> {
    if (this.closed) return Promise.reject(new Error('broker persistence is closed'))
    const failed = this.queueFailure ?? this.walSync?.failure ?? this.queueSync?.failure
    if (failed) return Promise.reject(failed)
    this.ops.push(op)
    if (!this.batch) {
      this.batch = {}
      setImmediate(() => this.flush())
    }
    return (this.batch[until] ??= deferred()).promise
  }

  /** A failed commit or journal write: final until a restart (see queueFailure); said once. */
  private failFor(batch: { durable?: Deferred; written?: Deferred }, code: string, what: string, err: unknown): void {
    const cause = err as NodeJS.ErrnoException
    this.queueFailure = Object.assign(new Error(`broker persistence: ${what} failed; the broker needs a restart: ${cause.message}`, { cause }), { code: cause.code })
    this.logger?.error({ code, err }, `broker persistence: ${what} failed; no QoS 1/2 message is acknowledged until the broker restarts`)
    batch.written?.reject(this.queueFailure)
    batch.durable?.reject(this.queueFailure)
  }

  private flush(): void {
    const batch = this.batch
    this.batch = undefined
    if (!batch) return
    const ops = this.ops
    this.ops = []
    let tableChanged: boolean
    let queueWritten: boolean
    try {
      const before = this.totalChanges.get() as number
      this.db.transaction(() => {
        for (const op of ops) op()
      })()
      tableChanged = (this.totalChanges.get() as number) !== before
    } catch (err) {
      this.failFor(batch, 'BROKER_PERSISTENCE_COMMIT_FAILED', 'commit', err)
      return
    }
    try {
      queueWritten = this.queue.commit()
    } catch (err) {
      // The file may end in part of a record now, and anything written after it would be lost at
      // replay: nothing more is acknowledged until a restart cuts it off.
      this.failFor(batch, 'BROKER_PERSISTENCE_QUEUE_FAILED', 'queue journal write', err)
      return
    }
    if (tableChanged) this.walDirty = true
    if (queueWritten) this.queueDirty = true
    batch.written?.resolve()
    if (!batch.durable) return
    const durable = batch.durable
    // Every file written since its last sync, not only this commit's: a 'written' change (an owner
    // claim, a packet id) is promised to reach the disk with the next durable commit.
    const syncs: Promise<void>[] = []
    if (this.walDirty && this.walSync) syncs.push(this.walSync.durable())
    if (this.queueDirty && this.queueSync) syncs.push(this.queueSync.durable())
    this.walDirty = false
    this.queueDirty = false
    if (syncs.length === 0) durable.resolve()
    else {
      Promise.all(syncs).then(() => durable.resolve(), (err: unknown) => {
        // Final (common/wal-sync.ts): nothing more is acknowledged until a restart. Said once.
        if (!this.syncFailureLogged) {
          this.syncFailureLogged = true
          this.logger?.error({ code: 'BROKER_PERSISTENCE_SYNC_FAILED', err }, 'broker persistence: fsync failed; no QoS 1/2 message is acknowledged until the broker restarts')
        }
        durable.reject(err)
      })
    }
  }
}

/**
 * What a QoS 1 delivery's packet id and its clearing wait for: the WAL write, not the fsync. Aedes
 * sends the delivery, or reads the subscriber's next PUBACKs, only when these resolve, so an fsync
 * here was on every message's path twice more. Nothing is promised to anyone on them: a power cut
 * that loses one loses no message, it only resends it (with a new packet id, or after its PUBACK),
 * a duplicate that QoS 1 allows. A process crash loses neither (the WAL is in the OS page cache),
 * and any later commit's fsync covers them. QoS 2 waits for the fsync: a resend there would
 * deliver twice what was promised once.
 */
function untilFor(packet: Pick<Packet, 'qos'>): 'durable' | 'written' {
  return packet.qos === 1 ? 'written' : 'durable'
}

/**
 * One queued copy per session. A session whose filters overlap (`cmd/d/#` and `cmd/d/+`) is
 * listed once per matching filter, and the reference queues a copy for each; MQTT allows the
 * copies (MQTT-3.3.5-1), but queued copies share one identity, so one acknowledgement cleared one
 * of them in memory and the other stayed on disk, to be sent again after every restart.
 */
function oncePerClient<T extends { clientId: string }>(subs: T[]): T[] {
  if (subs.length < 2) return subs
  const seen = new Set<string>()
  return subs.filter((s) => !seen.has(s.clientId) && (seen.add(s.clientId), true))
}

/** Appended to this broker's id on Wills restored from a previous run. */
export const PREVIOUS_RUN = '#previous-run'

/**
 * The key of a queued message's row: its broker identity, or for a PUBREL (which has none; it
 * takes the place of its message, see OutgoingQueue.release) its packet id.
 */
function rowKey(clientId: string, packet: Pick<Packet, 'brokerId' | 'brokerCounter' | 'messageId'>): string {
  if (packet.brokerId === undefined && packet.brokerCounter === undefined) return `${clientId}\u0000#\u0000${packet.messageId}`
  return `${clientId}\u0000${packet.brokerId}\u0000${packet.brokerCounter}`
}

function payloadOf(packet: Packet): Buffer {
  const p = packet.payload as Buffer | string | undefined
  return typeof p === 'string' ? Buffer.from(p) : (p ?? Buffer.alloc(0))
}

/** Everything but the payload, as JSON; Buffers inside MQTT 5 properties survive the round trip. */
function meta(packet: Packet): string {
  const rest: Record<string, unknown> = {}
  for (const key of Object.keys(packet)) if (key !== 'payload') rest[key] = (packet as unknown as Record<string, unknown>)[key]
  return JSON.stringify(rest)
}

/** The broker id a queued row's packet carries, or null (rows written ahead carry none). */
function brokerIdOf(text: string): string | null {
  return (JSON.parse(text) as { brokerId?: string }).brokerId ?? null
}

function decode(row: { payload: Buffer; meta: string }): Packet {
  const fields = JSON.parse(row.meta, (_key, value: unknown) => {
    if (value && typeof value === 'object' && (value as { type?: unknown }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data)) {
      return Buffer.from((value as { data: number[] }).data)
    }
    return value
  }) as Packet
  fields.payload = row.payload
  return fields
}
