/**
 * A patrol wand and its dock. Out on a round the wand stores each checkpoint scan with its own
 * time; put in the dock, it uploads every stored scan as a GWWSC sentence and deletes a stored
 * scan only when the gateway answers that frame: GWACK (committed) or GWNAK (never acceptable).
 * Unanswered frames are sent again after `timeoutMs`, a window of them in flight at a time.
 */
import { encode, MAX_SEQ, type WandRecord } from '../../contracts/serial-sentences.ts'
import { throughNoise, type NoiseOptions } from './noise.ts'
import type { Reply, SerialEnd } from './serial-end.ts'

export interface StoredScan {
  seq: number
  tag: string
  /** When the wand scanned the tag (epoch ms). */
  time: number
}

export class PatrolWand {
  /** Stored scans by record number; an upload deletes each only on the gateway's answer. */
  readonly records = new Map<number, StoredScan>()
  private seq = 0

  constructor(
    readonly id: string,
    /** The patrol staff the wand is issued to. */
    readonly staff?: string,
  ) {}

  store(tag: string, time: number): StoredScan {
    this.seq = this.seq >= MAX_SEQ ? 1 : this.seq + 1
    const scan = { seq: this.seq, tag, time }
    this.records.set(scan.seq, scan)
    return scan
  }

  sentence(scan: StoredScan): WandRecord {
    return { type: 'GWWSC', device: this.id, seq: scan.seq, staff: this.staff, tag: scan.tag, time: scan.time }
  }
}

export interface UploadOptions {
  /** Frames sent and not yet answered, at most. */
  window?: number
  timeoutMs?: number
  /** Sends of one frame before the dock gives up on it (the record stays on the wand). */
  maxAttempts?: number
  noise?: NoiseOptions
  /** Called when a frame is on the wire (each send, resends too). */
  onSent?: (scan: StoredScan) => void
  /** Called for each answer, before the record is deleted (tests check the commit came first). */
  onReply?: (reply: Reply, scan: StoredScan) => void
}

export interface UploadResult {
  acked: number
  naked: { seq: number; code: string }[]
  /** Frames sent again after no answer came in time. */
  resent: number
  /** Records still on the wand (every send of them went unanswered). */
  left: number
  seconds: number
}

export function dockUpload(end: SerialEnd, wand: PatrolWand, options: UploadOptions = {}): Promise<UploadResult> {
  const window = options.window ?? 32
  const timeoutMs = options.timeoutMs ?? 2000
  const maxAttempts = options.maxAttempts ?? 5
  const started = performance.now()
  const queue = [...wand.records.keys()].sort((a, b) => a - b)
  const inFlight = new Map<number, { attempts: number; timer: NodeJS.Timeout | undefined }>()
  const result: UploadResult = { acked: 0, naked: [], resent: 0, left: 0, seconds: 0 }

  return new Promise((resolve) => {
    const finish = () => {
      off()
      result.left = wand.records.size
      result.seconds = (performance.now() - started) / 1000
      resolve(result)
    }
    const send = (seq: number) => {
      const scan = wand.records.get(seq)!
      const entry = inFlight.get(seq) ?? { attempts: 0, timer: undefined }
      entry.attempts++
      inFlight.set(seq, entry)
      const text = encode(wand.sentence(scan))
      const bytes = options.noise ? throughNoise(text, options.noise) : text
      // The clock starts when the frame is on the wire: a paced line may hold it back a while.
      end.write(bytes).then(
        () => {
          options.onSent?.(scan)
          if (inFlight.get(seq) === entry) entry.timer = setTimeout(() => timedOut(seq, entry), timeoutMs)
        },
        () => timedOut(seq, entry),
      )
    }
    const timedOut = (seq: number, entry: { attempts: number }) => {
      if (inFlight.get(seq) !== entry) return
      if (entry.attempts < maxAttempts) {
        result.resent++
        send(seq)
      } else {
        inFlight.delete(seq)
        pump()
      }
    }
    const pump = () => {
      while (inFlight.size < window && queue.length > 0) send(queue.shift()!)
      if (inFlight.size === 0 && queue.length === 0) finish()
    }
    const off = end.onReply((reply) => {
      if (reply.device !== wand.id) return
      const entry = inFlight.get(reply.seq)
      const scan = wand.records.get(reply.seq)
      if (!entry || !scan) return // an answer to a resend already answered
      clearTimeout(entry.timer)
      inFlight.delete(reply.seq)
      options.onReply?.(reply, scan)
      if (reply.type === 'GWACK') result.acked++
      else result.naked.push({ seq: reply.seq, code: reply.code })
      wand.records.delete(reply.seq)
      pump()
    })
    pump()
  })
}
