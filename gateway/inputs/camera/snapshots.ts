/**
 * Snapshot JPEGs kept on the gateway's disk, under `<dataDir>/snapshots/<camera>/<file>.jpg`, with
 * a byte quota over all cameras: the oldest go first, so the latest evidence is always there. A
 * snapshot is only an attachment: when it cannot be kept the event still goes on without it.
 *
 * The quota is settled in memory (the index is rebuilt from the directory at start), so two
 * snapshots arriving together cannot both squeeze into the last free bytes.
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync, readdirSync, statSync, unlinkSync } from 'node:fs'
import * as fsp from 'node:fs/promises'
import { join } from 'node:path'

/** The file operations the store uses; tests pass ones that fail or record. */
export type SnapshotFs = Pick<typeof fsp, 'mkdir' | 'open' | 'rename' | 'unlink'>

export type DropReason = 'too_large' | 'not_jpeg' | 'over_quota' | 'write_failed'

export type SaveResult = { ok: true; ref: string; evicted: number } | { ok: false; reason: DropReason; message: string }

interface Entry {
  ref: string
  bytes: number
  at: number
}

/** Every JPEG starts with SOI (FF D8) followed by a marker (FF xx). */
export function isJpeg(bytes: Buffer): boolean {
  return bytes.length >= 4 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff
}

export class SnapshotStore {
  /** Oldest first. */
  private entries: Entry[] = []
  private used = 0
  readonly dir: string

  constructor(
    dataDir: string,
    private readonly limits: { maxBytes: number; quotaBytes: number },
    private readonly fs: SnapshotFs = fsp,
  ) {
    this.dir = join(dataDir, 'snapshots')
  }

  get usedBytes(): number {
    return this.used
  }

  get count(): number {
    return this.entries.length
  }

  /**
   * Reads what earlier runs left, so the quota holds across restarts; removes the `.tmp` files of
   * writes a crash or a full disk cut short, which the quota does not count and nothing else
   * would ever remove. (Runs at start, before any save, so no write of this run is among them.)
   */
  load(): void {
    mkdirSync(this.dir, { recursive: true })
    const found: Entry[] = []
    for (const camera of readdirSync(this.dir, { withFileTypes: true })) {
      if (!camera.isDirectory()) continue
      for (const file of readdirSync(join(this.dir, camera.name))) {
        if (file.startsWith('.') && file.endsWith('.tmp')) {
          try {
            unlinkSync(join(this.dir, camera.name, file))
          } catch {
            // Gone already, or not ours to remove: either way not counted.
          }
          continue
        }
        if (!file.endsWith('.jpg')) continue
        const st = statSync(join(this.dir, camera.name, file))
        found.push({ ref: `snapshots/${camera.name}/${file}`, bytes: st.size, at: st.mtimeMs })
      }
    }
    this.entries = found.sort((a, b) => a.at - b.at || (a.ref < b.ref ? -1 : 1))
    this.used = found.reduce((n, e) => n + e.bytes, 0)
  }

  /** `camera` is a device id (an Ident: no slashes, never `..`). */
  async save(camera: string, bytes: Buffer, at: number): Promise<SaveResult> {
    if (!isJpeg(bytes)) return { ok: false, reason: 'not_jpeg', message: 'the image part does not start with the JPEG SOI marker' }
    if (bytes.length > this.limits.maxBytes) {
      return { ok: false, reason: 'too_large', message: `snapshot is ${bytes.length} bytes; the limit is ${this.limits.maxBytes}` }
    }
    if (bytes.length > this.limits.quotaBytes) {
      return { ok: false, reason: 'over_quota', message: `snapshot is ${bytes.length} bytes; the whole quota is ${this.limits.quotaBytes}` }
    }
    const evict: Entry[] = []
    while (this.used + bytes.length > this.limits.quotaBytes && this.entries.length > 0) {
      const oldest = this.entries.shift()!
      this.used -= oldest.bytes
      evict.push(oldest)
    }
    // File names sort by arrival: epoch milliseconds, then a random tag for same-millisecond ones.
    const file = `${String(at).padStart(13, '0')}-${randomBytes(4).toString('hex')}.jpg`
    const entry: Entry = { ref: `snapshots/${camera}/${file}`, bytes: bytes.length, at }
    this.entries.push(entry)
    this.used += bytes.length
    await Promise.all(evict.map((e) => this.fs.unlink(join(this.dir, '..', e.ref)).catch(() => undefined)))
    const dir = join(this.dir, camera)
    const tmp = join(dir, `.${file}.tmp`)
    const path = join(dir, file)
    try {
      // A camera's first snapshot makes its directory: its entry in snapshots/ must last too.
      if ((await this.fs.mkdir(dir, { recursive: true })) !== undefined) await this.syncDir(this.dir)
      // Written aside and renamed, so a crash never leaves a half JPEG under the real name.
      await this.writeDurably(tmp, bytes)
      await this.fs.rename(tmp, path)
      // The rename is only durable once the directory is: the event committed right after this
      // must not reference a name that a power loss takes back.
      await this.syncDir(dir)
    } catch (err) {
      this.forget(entry.ref)
      // A half-written file (ENOSPC), or a renamed one whose directory would not sync, is
      // outside the quota once forgotten: neither may stay behind.
      await Promise.all([tmp, path].map((p) => this.fs.unlink(p).catch(() => undefined)))
      return { ok: false, reason: 'write_failed', message: (err as Error).message }
    }
    return { ok: true, ref: entry.ref, evicted: evict.length }
  }

  /**
   * The bytes reach the disk before the rename makes them visible: without the fsync, a power
   * loss after the event's commit can leave the renamed file empty (ext4 delayed allocation).
   */
  private async writeDurably(path: string, bytes: Buffer): Promise<void> {
    const handle = await this.fs.open(path, 'w')
    try {
      await handle.writeFile(bytes)
      await handle.sync()
    } finally {
      await handle.close()
    }
  }

  private async syncDir(path: string): Promise<void> {
    const handle = await this.fs.open(path, 'r')
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  }

  /** Removes a snapshot whose event was not stored after all. */
  async remove(ref: string): Promise<void> {
    if (!this.forget(ref)) return
    await this.fs.unlink(join(this.dir, '..', ref)).catch(() => undefined)
  }

  private forget(ref: string): boolean {
    const i = this.entries.findIndex((e) => e.ref === ref)
    if (i < 0) return false
    this.used -= this.entries[i].bytes
    this.entries.splice(i, 1)
    return true
  }
}
