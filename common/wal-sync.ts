/**
 * Durable SQLite commits without the event loop waiting on the disk.
 *
 * With `synchronous=FULL` in WAL mode, every commit fsyncs the WAL on the committing thread, and
 * better-sqlite3 commits on the event loop: the process stops for the whole fsync. In the broker
 * that was a quarter of the CPU profile's samples under persistent-session QoS 1 load, time in
 * which no other client was served.
 *
 * So a connection that uses this runs `synchronous=NORMAL` (a commit is written into the WAL, in
 * the OS page cache, and returns; SQLite still syncs the WAL before every checkpoint, so a crash
 * or power cut leaves a consistent database: https://www.sqlite.org/pragma.html#pragma_synchronous)
 * and adds the missing fsync itself: `durable()` runs fdatasync on the WAL file on libuv's thread
 * pool and resolves when it returns. What the caller acknowledges after `durable()` has reached
 * the disk, as with FULL: fsync works on the file, not on the descriptor, so our own descriptor
 * of the WAL flushes what SQLite's connection wrote.
 *
 * One fdatasync covers every commit made before it started. Commits made while one is running
 * wait for the next, which then covers them all: group commit at the disk's pace. A power cut
 * before a sync returns loses only unacknowledged commits, and only a suffix of them: WAL frames
 * are checksummed in a chain, so recovery stops at the first frame that did not reach the disk.
 *
 * A failed sync is final. With FULL, SQLite would fail that commit and roll it back; here the
 * commit already happened and later readers see it. Linux reports a writeback error once and then
 * marks the pages clean, so a later fdatasync would "succeed" over data that never reached the
 * disk, and a resend found as a duplicate would be acknowledged on it. So after one failure every
 * `durable()` rejects, and the owner stays unavailable until the process restarts and SQLite
 * recovers from what is really on disk.
 *
 * Not every fsync leaves the event loop: SQLite itself still syncs the WAL header when the WAL
 * starts over after a checkpoint, and a checkpoint finished by the owning connection
 * (common/checkpointer.ts) syncs there. Both are occasional; the per-commit fsync is what moved.
 */
import { closeSync, fdatasync, fsyncSync, openSync } from 'node:fs'
import { dirname } from 'node:path'

/** fdatasync(fd, callback); replaceable in tests to watch the ordering. */
export type SyncFn = (fd: number, done: (err: NodeJS.ErrnoException | null) => void) => void

interface Waiter {
  resolve: () => void
  reject: (err: unknown) => void
}

export class WalSync {
  private fd: number | undefined
  private running: Promise<void> | undefined
  /** Callers since the running sync started: the next sync is theirs. */
  private waiting: Waiter[] = []
  private closed = false
  /** The first failed sync; every later `durable()` rejects with it (see above). */
  private failed: Error | undefined
  /** Syncs started, for metrics and tests. */
  syncs = 0

  /**
   * `dbPath` is the database file; '' or ':memory:' has no WAL, and `durable()` resolves at
   * once. The WAL file is opened at the first `durable()`: SQLite creates it at the first write.
   */
  /**
   * `file`: what to sync, when not the database's WAL; null when `sync` finds its own descriptor
   * (the broker's queue journal, whose file a rewrite replaces), and is then passed -1.
   */
  constructor(
    private readonly dbPath: string,
    private readonly sync: SyncFn = fdatasync,
    private readonly file: string | null = `${dbPath}-wal`,
  ) {}

  get inMemory(): boolean {
    return this.dbPath === '' || this.dbPath === ':memory:'
  }

  /** The sync failure that made this database unusable until a restart, if any. */
  get failure(): Error | undefined {
    return this.failed
  }

  /** Resolves once every commit made before this call is on disk. */
  durable(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('WAL sync is closed'))
    if (this.failed) return Promise.reject(this.failed)
    if (this.inMemory) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ resolve, reject })
      if (!this.running) this.running = this.next()
    })
  }

  /** Syncs for the waiting callers, then for those who came meanwhile, until none is left. */
  private async next(): Promise<void> {
    while (this.waiting.length > 0) {
      const batch = this.waiting
      this.waiting = []
      try {
        if (this.failed) throw this.failed
        const fd = this.file === null ? -1 : (this.fd ??= this.openWal())
        this.syncs++
        await new Promise<void>((resolve, reject) => this.sync(fd, (err) => (err ? reject(err) : resolve())))
        for (const w of batch) w.resolve()
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err))
        this.failed ??= Object.assign(new Error(`WAL fsync failed; the database needs a restart to recover: ${e.message}`, { cause: e }), { code: (e as NodeJS.ErrnoException).code })
        for (const w of batch) w.reject(this.failed)
      }
    }
    this.running = undefined
  }

  /**
   * Opens the WAL and syncs its directory once: SQLite under FULL syncs the directory the first
   * time it syncs a new journal, so that the file's creation itself survives a power cut.
   */
  private openWal(): number {
    const fd = openSync(this.file!, 'r')
    const dir = openSync(dirname(this.dbPath), 'r')
    try {
      fsyncSync(dir)
    } finally {
      closeSync(dir)
    }
    return fd
  }

  /** Waits for the running sync (its descriptor must not be closed under it), then closes. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.running
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
  }
}
