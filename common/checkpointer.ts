/**
 * WAL checkpoints on a worker thread, for a SQLite database whose writer lives on the event loop.
 *
 * SQLite's automatic checkpoint runs inside whichever commit crosses `wal_autocheckpoint` pages:
 * it copies the WAL into the database file and fsyncs it, on the committing thread. Measured
 * here, that stalled the gateway's event loop for 50-300 ms every few seconds under load, and an
 * alert arriving meanwhile waited. So the owning connection turns automatic checkpoints off and
 * this worker, with its own connection, runs PASSIVE checkpoints, which never block the writer
 * (https://www.sqlite.org/wal.html#ckpt).
 *
 * The worker is inline CommonJS (`eval: true`) so it runs the same in development (tsx), in the
 * test runner and in the esbuild bundle; better-sqlite3 is loaded by absolute path.
 */
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import type Database from 'better-sqlite3'

const require = createRequire(import.meta.url)

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
const databases = new Map()
function checkpoint(id) {
  const d = databases.get(id)
  if (!d || d.running) return
  d.running = true
  try {
    // Frames committed during a pass are left for the next one; passes follow each other while
    // the last one still took a while, so what is left for the owner to finish is small.
    let r
    let passes = 0
    let took
    do {
      const started = performance.now()
      r = d.db.pragma('wal_checkpoint(PASSIVE)')[0]
      took = performance.now() - started
      passes++
    } while (took > 2 && passes < 4 && r.busy === 0)
    parentPort.postMessage({ id, ok: true, busy: r.busy, log: r.log, checkpointed: r.checkpointed, passes })
  } catch (err) {
    parentPort.postMessage({ id, ok: false, error: String(err && err.message || err) })
  } finally {
    d.running = false
  }
}
parentPort.on('message', (m) => {
  if (m.type === 'open') {
    try {
      const db = new Database(m.path, { fileMustExist: true })
      db.pragma('busy_timeout = 1000')
      // A checkpoint copies WAL frames straight to the database file: no use for a page cache
      // (better-sqlite3's default is 16 MB a connection; see common/sqlite.ts).
      db.pragma('cache_size = -256')
      databases.set(m.id, { db, running: false, timer: setInterval(() => checkpoint(m.id), m.intervalMs) })
    } catch (err) {
      parentPort.postMessage({ id: m.id, ok: false, error: String(err && err.message || err) })
    }
  } else if (m.type === 'now') {
    checkpoint(m.id)
  } else if (m.type === 'close') {
    const d = databases.get(m.id)
    if (d) { clearInterval(d.timer); d.db.close(); databases.delete(m.id) }
    parentPort.postMessage({ id: m.id, closed: true })
  }
})
`

/**
 * One checkpoint thread per process, shared by every database in it (the gateway's outbox and
 * raw-reading store; the center's event store and casebook): a thread costs a V8 isolate's
 * memory, and checkpoints are short.
 */
interface SharedThread {
  worker: Worker
  listeners: Map<number, (m: CheckpointResult & { closed?: boolean }) => void>
}
let shared: SharedThread | undefined
let nextId = 1

function sharedThread(): SharedThread {
  if (shared) return shared
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { driver: require.resolve('better-sqlite3') },
    // A checkpoint thread needs little: keep its V8 heap small.
    resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
  })
  const thread: SharedThread = { worker, listeners: new Map() }
  worker.on('message', (m: CheckpointResult & { id: number; closed?: boolean }) => thread.listeners.get(m.id)?.(m))
  worker.on('error', (err) => {
    for (const listener of thread.listeners.values()) listener({ ok: false, error: err.message })
  })
  // If the thread dies, the next database to open gets a new one.
  worker.on('exit', () => {
    if (shared === thread) shared = undefined
  })
  // The process must be able to exit even if this thread were stuck in a checkpoint.
  worker.unref()
  shared = thread
  return thread
}

/** Databases the shared checkpoint thread is serving now (for tests). */
export function checkpointThreadLoad(): { threads: number; databases: number } {
  return { threads: shared ? 1 : 0, databases: shared?.listeners.size ?? 0 }
}

export interface CheckpointResult {
  ok: boolean
  busy?: number
  log?: number
  checkpointed?: number
  /** PASSIVE passes run back to back this time (see the worker). */
  passes?: number
  error?: string
}

/** The owning connection, for finishing checkpoints so its WAL starts over (see finish()). */
export interface WalOwner {
  db: Database.Database
  /** WAL size past which the owner finishes a checkpoint; 16 MB if not given. */
  restartBytes?: number
  /** Time the owner's thread spent on it, each time. */
  onRestart?: (elapsedMs: number) => void
}

export class Checkpointer {
  private readonly thread: SharedThread
  private readonly id = nextId++
  private closed = false
  private closedAck: (() => void) | undefined
  private readonly finishStmt: Database.Statement | undefined
  private readonly restartFrames: number

  /**
   * `owner`, when given, is the connection that writes: its automatic checkpoints are turned
   * off here, and it finishes this thread's checkpoints when the WAL grows (see finish()).
   */
  constructor(path: string, intervalMs: number, onResult: (r: CheckpointResult) => void = () => {}, private readonly owner?: WalOwner) {
    if (owner) {
      owner.db.pragma('wal_autocheckpoint = 0')
      const restartBytes = owner.restartBytes ?? 16 * 1024 * 1024
      // When the WAL starts over, SQLite cuts its file back to this size (it never shrinks otherwise).
      owner.db.pragma(`journal_size_limit = ${restartBytes}`)
      this.restartFrames = restartBytes / (owner.db.pragma('page_size', { simple: true }) as number)
      this.finishStmt = owner.db.prepare('PRAGMA wal_checkpoint(PASSIVE)')
    } else {
      this.restartFrames = Infinity
    }
    this.thread = sharedThread()
    this.thread.listeners.set(this.id, (r) => {
      if (r.closed) {
        this.closedAck?.()
        return
      }
      if (r.ok) this.finish(r)
      onResult(r)
    })
    this.thread.worker.postMessage({ type: 'open', id: this.id, path, intervalMs })
  }

  /**
   * The thread copies the WAL into the database without ever blocking a commit, but under steady
   * writes a commit always lands while it works, so the WAL is never copied in full and SQLite
   * never starts it over: the gateway's outbox WAL grew by 30 MB a second at 38 k rows/s. So
   * once a pass reports a WAL past the owner's restart size, the owner's thread (the only writer,
   * so nothing lands meanwhile) copies the few frames committed since that pass, and its next
   * commit starts the WAL from the beginning. PASSIVE never waits: if the thread is mid-pass
   * again, the owner does what it can and the next report tries again.
   */
  private finish(r: CheckpointResult): void {
    if (this.closed || !this.owner || !this.finishStmt || r.busy || (r.log ?? 0) < this.restartFrames) return
    if (!this.owner.db.open || this.owner.db.inTransaction) return
    const started = performance.now()
    this.finishStmt.get()
    this.owner.onRestart?.(performance.now() - started)
  }

  /** Asks for a checkpoint now (after a burst of writes), instead of at the next tick. */
  nudge(): void {
    if (!this.closed) this.thread.worker.postMessage({ type: 'now', id: this.id })
  }

  /** Closes this database's connection on the thread; the thread ends with its last database. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    const acknowledged = new Promise<void>((resolve) => (this.closedAck = resolve))
    this.thread.worker.postMessage({ type: 'close', id: this.id })
    await Promise.race([acknowledged, new Promise<void>((resolve) => setTimeout(resolve, 2000).unref())])
    this.thread.listeners.delete(this.id)
    if (this.thread.listeners.size === 0) {
      if (shared === this.thread) shared = undefined
      await this.thread.worker.terminate()
    }
  }
}
