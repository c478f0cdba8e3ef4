/**
 * The persistent sessions' queued QoS 1/2 messages on disk, as an append-only journal.
 *
 * Why not SQLite, as for everything else the broker keeps: a queued message lives for one round
 * trip to its subscriber, and SQLite made it an insert, an update and a delete, each rewriting
 * whole B-tree pages into the WAL, and then checkpoints. With every statement skipped, the broker
 * was level with Mosquitto; with them, at about 0.7 of it (docs/broker.md, "Throughput"). Here a
 * message costs one small record when queued, one when sent and one when acknowledged, written
 * together once per group commit.
 *
 * The file is a sequence of records, each `[u32 body length][u32 CRC-32 of the body][body]`, the
 * body starting with its type and the row's number (seq):
 * - PUT     seq, client id, packet id (-1: none), payload, meta (the packet's other fields, JSON)
 * - ID      seq, packet id
 * - REWRITE seq, packet id, payload, meta (a PUBREL taking its message's place, or a packet of
 *           another broker replacing a queued one)
 * - DELETE  seq
 * Replay applies them in order and stops at the first record that is incomplete or fails its
 * checksum: a write torn by a power cut, which nobody was told about (its commit's fsync had not
 * returned). That tail is cut off, so later records are never written behind garbage.
 *
 * When the file has grown to several times what is still queued, it is rewritten: the live rows
 * go to a new file, which is fsynced and renamed over the old one, then the directory is fsynced.
 */
import { closeSync, existsSync, fdatasync, fsyncSync, ftruncateSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'
// zlib.crc32: Node 20.15 and later (package.json engines).
import { crc32 } from 'node:zlib'

export interface QueuedRow {
  seq: number
  clientId: string
  messageId: number | null
  payload: Buffer
  meta: string
}

const PUT = 1
const ID = 2
const REWRITE = 3
const DELETE = 4
/** Length and checksum in front of every body. */
const FRAME = 8
/** Rewritten only past this size, and only once it is this many times what is live. */
const COMPACT_MIN_BYTES = 8 * 1024 * 1024
const COMPACT_FACTOR = 4

export class QueueJournal {
  /** Live rows by number, in queue order (numbers only grow; a rewrite keeps its place). */
  private readonly rows = new Map<number, QueuedRow>()
  /** Records not yet written. */
  private readonly out = new RecordBuffer()
  private fd: number | undefined
  private size = 0
  private liveBytes = 0
  private maxSeq = 0
  /** Syncs running, by descriptor; descriptors a rewrite replaced, to close when theirs return. */
  private readonly syncing = new Map<number, number>()
  private readonly retired = new Set<number>()
  /** How many bytes of a torn tail replay cut off (0 normally). */
  readonly truncatedBytes: number = 0

  /**
   * `path` undefined: in memory only (a broker without a database file). `readOnly`: replays the
   * file as it is and neither cuts nor opens it (a test reading a running broker's queue).
   */
  constructor(
    private readonly path: string | undefined,
    options: { readOnly?: boolean } = {},
  ) {
    if (path === undefined) return
    if (existsSync(path)) {
      const data = readFileSync(path)
      const good = this.replay(data)
      this.size = good
      if (options.readOnly) return
      if (good < data.length) {
        this.truncatedBytes = data.length - good
        // Normally a write torn by a power cut, never acknowledged. Kept aside all the same: a
        // record damaged in the middle of the file also ends the replay there.
        writeFileSync(`${path}.cut-${Date.now()}`, data.subarray(good))
        const fd = openSync(path, 'r+')
        try {
          ftruncateSync(fd, good)
          fsyncSync(fd)
        } finally {
          closeSync(fd)
        }
      }
    }
    if (options.readOnly) return
    this.fd = openSync(path, 'a')
    // The file's creation must survive a power cut too.
    syncDirectory(path)
  }

  /**
   * fdatasync of the current file on the thread pool. A rewrite replaces the descriptor; one
   * with a sync still running is closed only when that sync returns (see compact()).
   */
  sync(done: (err: NodeJS.ErrnoException | null) => void, syncFn: (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void = fdatasync): void {
    const fd = this.fd
    if (fd === undefined) return done(null)
    this.syncing.set(fd, (this.syncing.get(fd) ?? 0) + 1)
    syncFn(fd, (err) => {
      const left = (this.syncing.get(fd) ?? 1) - 1
      if (left > 0) this.syncing.set(fd, left)
      else {
        this.syncing.delete(fd)
        if (this.retired.delete(fd)) closeSync(fd)
      }
      done(err)
    })
  }

  /** The highest row number this file has held, acknowledged rows included: never reused. */
  get highestSeq(): number {
    return this.maxSeq
  }

  /** The live rows, in queue order. */
  live(): IterableIterator<QueuedRow> {
    return this.rows.values()
  }

  has(seq: number): boolean {
    return this.rows.has(seq)
  }

  put(seq: number, clientId: string, payload: Buffer, meta: string): void {
    const row: QueuedRow = { seq, clientId, messageId: null, payload, meta }
    this.rows.set(seq, row)
    if (seq > this.maxSeq) this.maxSeq = seq
    this.liveBytes += rowBytes(row)
    if (this.path !== undefined) this.out.put(seq, clientId, -1, payload, meta)
  }

  setMessageId(seq: number, messageId: number): void {
    const row = this.rows.get(seq)
    if (!row) return
    row.messageId = messageId
    if (this.path !== undefined) this.out.id(seq, messageId)
  }

  rewrite(seq: number, messageId: number | null, payload: Buffer, meta: string): void {
    const row = this.rows.get(seq)
    if (!row) return
    this.liveBytes += payload.length + meta.length - row.payload.length - row.meta.length
    Object.assign(row, { messageId, payload, meta })
    if (this.path !== undefined) this.out.rewrite(seq, messageId ?? -1, payload, meta)
  }

  delete(seq: number): void {
    const row = this.rows.get(seq)
    if (!row) return
    this.rows.delete(seq)
    this.liveBytes -= rowBytes(row)
    if (this.path !== undefined) this.out.delete(seq)
  }

  /** The first row in queue order of this client with this packet id (and, if given, a test). */
  find(clientId: string, messageId: number, test: (row: QueuedRow) => boolean = () => true): QueuedRow | undefined {
    for (const row of this.rows.values()) if (row.clientId === clientId && row.messageId === messageId && test(row)) return row
    return undefined
  }

  /**
   * Writes what was recorded since the last call, in one write (into the OS page cache: it
   * survives a process crash; the caller's fsync makes it survive a power cut). Returns whether
   * anything was written. Rewrites the file instead when it has grown to several times what is
   * live: the new file holds every row as it is now, pending records included, and is fsynced.
   * Throws if the write fails; the caller must then stop acknowledging (see SqlitePersistence).
   */
  commit(): boolean {
    if (this.out.length === 0 || this.fd === undefined) return false
    const chunk = this.out.take()
    if (this.size + chunk.length > COMPACT_MIN_BYTES && this.size + chunk.length > COMPACT_FACTOR * this.liveBytes) {
      this.compact()
      return true
    }
    writeAll(this.fd, chunk)
    this.size += chunk.length
    return true
  }

  /** After the last sync has returned (SqlitePersistence.destroy waits for it). */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
    for (const fd of this.retired) closeSync(fd)
    this.retired.clear()
  }

  private compact(): void {
    const path = this.path!
    const tmp = `${path}.tmp`
    const fd = openSync(tmp, 'w')
    let size = 0
    try {
      const snapshot = new RecordBuffer()
      // A delete of no row, so that the highest number held survives the rewrite (never reused).
      snapshot.delete(this.maxSeq)
      for (const row of this.rows.values()) snapshot.put(row.seq, row.clientId, row.messageId ?? -1, row.payload, row.meta)
      const all = snapshot.take()
      writeAll(fd, all)
      size = all.length
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, path)
    syncDirectory(path)
    // A sync of the old descriptor may still be running: it is closed when that returns (sync()).
    const old = this.fd!
    if (this.syncing.has(old)) this.retired.add(old)
    else closeSync(old)
    this.fd = openSync(path, 'a')
    this.size = size
  }

  /** Applies the file's records; returns the length of its intact part. */
  private replay(data: Buffer): number {
    let at = 0
    while (at + FRAME <= data.length) {
      const length = data.readUInt32LE(at)
      const end = at + FRAME + length
      if (length < 9 || end > data.length) break
      const body = data.subarray(at + FRAME, end)
      if (crc32(body) !== data.readUInt32LE(at + 4)) break
      this.apply(new Reader(body))
      at = end
    }
    return at
  }

  private apply(r: Reader): void {
    const type = r.u8()
    const seq = r.f64()
    if (seq > this.maxSeq) this.maxSeq = seq
    if (type === PUT) {
      const clientId = r.str()
      const id = r.int()
      const row: QueuedRow = { seq, clientId, messageId: id < 0 ? null : id, payload: r.buf(), meta: r.str() }
      this.rows.set(seq, row)
      this.liveBytes += rowBytes(row)
    } else if (type === ID) {
      const row = this.rows.get(seq)
      if (row) row.messageId = r.int()
    } else if (type === REWRITE) {
      const row = this.rows.get(seq)
      const id = r.int()
      const payload = r.buf()
      const meta = r.str()
      if (row) {
        this.liveBytes += payload.length + meta.length - row.payload.length - row.meta.length
        Object.assign(row, { messageId: id < 0 ? null : id, payload, meta })
      }
    } else if (type === DELETE) {
      const row = this.rows.get(seq)
      if (row) {
        this.rows.delete(seq)
        this.liveBytes -= rowBytes(row)
      }
    }
  }
}

function rowBytes(row: QueuedRow): number {
  return 64 + row.clientId.length + row.payload.length + row.meta.length
}

function writeAll(fd: number, chunk: Buffer): void {
  for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off, chunk.length - off)
}

function syncDirectory(path: string): void {
  const dir = openSync(dirname(path), 'r')
  try {
    fsyncSync(dir)
  } finally {
    closeSync(dir)
  }
}

/**
 * Framed records written straight into one growing buffer: a commit's records cost one
 * allocation between them, not several each (a message makes three records).
 */
class RecordBuffer {
  private buf = Buffer.allocUnsafe(64 * 1024)
  private used = 0
  private start = 0

  get length(): number {
    return this.used
  }

  /**
   * The records so far, and a fresh start in the same memory: the caller writes them out before
   * anything else is recorded (commit() does, synchronously).
   */
  take(): Buffer {
    const out = this.buf.subarray(0, this.used)
    this.used = 0
    return out
  }

  put(seq: number, clientId: string, messageId: number, payload: Buffer, meta: string): void {
    this.begin(PUT, seq, 4 + Buffer.byteLength(clientId) + 4 + 4 + payload.length + 4 + Buffer.byteLength(meta))
    this.str(clientId)
    this.int(messageId)
    this.bytes(payload)
    this.str(meta)
    this.end()
  }

  id(seq: number, messageId: number): void {
    this.begin(ID, seq, 4)
    this.int(messageId)
    this.end()
  }

  rewrite(seq: number, messageId: number, payload: Buffer, meta: string): void {
    this.begin(REWRITE, seq, 4 + 4 + payload.length + 4 + Buffer.byteLength(meta))
    this.int(messageId)
    this.bytes(payload)
    this.str(meta)
    this.end()
  }

  delete(seq: number): void {
    this.begin(DELETE, seq, 0)
    this.end()
  }

  private begin(type: number, seq: number, rest: number): void {
    const need = FRAME + 9 + rest
    if (this.used + need > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.used + need))
      this.buf.copy(bigger, 0, 0, this.used)
      this.buf = bigger
    }
    this.start = this.used
    this.used += FRAME
    this.buf.writeUInt8(type, this.used)
    this.buf.writeDoubleLE(seq, this.used + 1)
    this.used += 9
  }

  private end(): void {
    const body = this.buf.subarray(this.start + FRAME, this.used)
    this.buf.writeUInt32LE(body.length, this.start)
    this.buf.writeUInt32LE(crc32(body), this.start + 4)
  }

  private int(v: number): void {
    this.buf.writeInt32LE(v, this.used)
    this.used += 4
  }

  private bytes(v: Buffer): void {
    this.int(v.length)
    v.copy(this.buf, this.used)
    this.used += v.length
  }

  private str(v: string): void {
    const n = this.buf.write(v, this.used + 4, 'utf8')
    this.int(n)
    this.used += n
  }
}

class Reader {
  private at = 0
  constructor(private readonly data: Buffer) {}

  u8(): number {
    return this.data.readUInt8(this.at++)
  }

  f64(): number {
    const v = this.data.readDoubleLE(this.at)
    this.at += 8
    return v
  }

  int(): number {
    const v = this.data.readInt32LE(this.at)
    this.at += 4
    return v
  }

  buf(): Buffer {
    const n = this.int()
    // A copy: the file's buffer is dropped after replay.
    const v = Buffer.from(this.data.subarray(this.at, this.at + n))
    this.at += n
    return v
  }

  str(): string {
    const n = this.int()
    const v = this.data.toString('utf8', this.at, this.at + n)
    this.at += n
    return v
  }
}
