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
const db = new Database(workerData.path, { fileMustExist: true })
db.pragma('busy_timeout = 1000')
let running = false
function checkpoint() {
  if (running) return
  running = true
  try {
    // Frames committed during a pass are left for the next one; passes follow each other while
    // the last one still took a while, so what is left for the owner to finish is small.
    let r
    let passes = 0
    let took
    do {
      const started = performance.now()
      r = db.pragma('wal_checkpoint(PASSIVE)')[0]
      took = performance.now() - started
      passes++
    } while (took > 2 && passes < 4 && r.busy === 0)
    parentPort.postMessage({ ok: true, busy: r.busy, log: r.log, checkpointed: r.checkpointed, passes })
  } catch (err) {
    parentPort.postMessage({ ok: false, error: String(err && err.message || err) })
  } finally {
    running = false
  }
}
const timer = setInterval(checkpoint, workerData.intervalMs)
parentPort.on('message', (m) => {
  if (m === 'now') checkpoint()
  if (m === 'close') { clearInterval(timer); db.close(); process.exit(0) }
})
`

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
  private readonly worker: Worker
  private closed = false
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
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { path, intervalMs, driver: require.resolve('better-sqlite3') },
      // A checkpoint thread needs little: keep its V8 heap small.
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
    })
    this.worker.on('message', (r: CheckpointResult) => {
      if (r.ok) this.finish(r)
      onResult(r)
    })
    this.worker.on('error', (err) => onResult({ ok: false, error: err.message }))
    // The process must be able to exit even if this thread were stuck in a checkpoint.
    this.worker.unref()
  }

  /**
   * This thread copies the WAL into the database without ever blocking a commit, but under steady
   * writes a commit always lands while it works, so the WAL is never copied in full and SQLite
   * never starts it over: the gateway's outbox WAL grew by 30 MB a second at 38 k rows/s. So
   * once a pass reports a WAL past the owner's restart size, the owner's thread (the only writer,
   * so nothing lands meanwhile) copies the few frames committed since that pass, and its next
   * commit starts the WAL from the beginning. PASSIVE never waits: if this thread is mid-pass
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
    if (!this.closed) this.worker.postMessage('now')
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()))
    this.worker.postMessage('close')
    await Promise.race([exited, new Promise<void>((resolve) => setTimeout(resolve, 2000).unref())])
  }
}
