/**
 * The device's end of a serial line (a real port, or the far end of a socat pty pair): writes
 * sentences, optionally paced to a real line's rate, and hears the gateway's GWACK/GWNAK replies.
 * A pty carries bytes as fast as they are written; a real 115200-baud line with 8N1 framing
 * carries 11,520 bytes a second (10 bits a byte), which `bytesPerSecond` reproduces.
 */
import { SerialPort } from 'serialport'
import { SentenceFramer } from '../../contracts/serial-framer.ts'
import { parse, type Ack, type Nak } from '../../contracts/serial-sentences.ts'

export type Reply = Ack | Nak

export interface SerialEndOptions {
  baudRate?: number
  /** Pace writes to this many bytes a second (`lineRate(baud)`); unpaced when absent. */
  bytesPerSecond?: number
}

/** Bytes a second an asynchronous line carries: start bit, data bits, parity bit, stop bits. */
export function lineRate(baud: number, dataBits = 8, parity = false, stopBits = 1): number {
  return baud / (1 + dataBits + (parity ? 1 : 0) + stopBits)
}

export class SerialEnd {
  /** Everything handed to the port so far. */
  bytesWritten = 0
  /** Reply sentences that failed their checksum (a noisy line garbles both directions). */
  garbledReplies = 0
  private readonly listeners = new Set<(r: Reply) => void>()
  private readonly framer: SentenceFramer
  /** Token bucket with no burst: when the line is next free, in ms (performance.now()). */
  private nextFree = 0
  private chain: Promise<void> = Promise.resolve()

  private constructor(
    readonly port: SerialPort,
    private readonly bytesPerSecond: number | undefined,
  ) {
    this.framer = new SentenceFramer({
      sentence: (body) => {
        const p = parse(body)
        if (!p.ok || (p.sentence.type !== 'GWACK' && p.sentence.type !== 'GWNAK')) return
        for (const l of this.listeners) l(p.sentence)
      },
      fault: (fault) => {
        if (fault !== 'noise') this.garbledReplies++
      },
    })
    port.on('data', (chunk: Buffer) => this.framer.push(chunk))
    // An unplugged line closes the port; the owner sees it in `closed`, writes after it fail.
    port.on('error', () => {})
  }

  static open(path: string, options: SerialEndOptions = {}): Promise<SerialEnd> {
    const port = new SerialPort({ path, baudRate: options.baudRate ?? 115_200, autoOpen: false })
    return new Promise((resolve, reject) => port.open((err) => (err ? reject(err) : resolve(new SerialEnd(port, options.bytesPerSecond)))))
  }

  /** Resolves once the port closed (a close() or an unplug). */
  get closed(): Promise<void> {
    if (!this.port.isOpen) return Promise.resolve()
    return new Promise((resolve) => this.port.once('close', () => resolve()))
  }

  onReply(listener: (r: Reply) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Writes in order; with a pace, each write waits until the line would be free for it. */
  write(data: string | Buffer): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data
    // A failed write (the line was unplugged) fails its caller, not every later write.
    const done = this.chain.then(() => this.writeNow(bytes))
    this.chain = done.catch(() => {})
    return done
  }

  private async writeNow(bytes: Buffer): Promise<void> {
    if (this.bytesPerSecond !== undefined) {
      const now = performance.now()
      const start = Math.max(now, this.nextFree)
      this.nextFree = start + (bytes.length * 1000) / this.bytesPerSecond
      // Wait for the line to finish the previous bytes; then this write occupies it until nextFree.
      if (start > now + 1) await new Promise((r) => setTimeout(r, start - now))
    }
    if (!this.port.isOpen) throw new Error(`${this.port.path} is not open`)
    this.bytesWritten += bytes.length
    if (!this.port.write(bytes)) await new Promise<void>((r) => this.port.once('drain', () => r()))
  }

  close(): Promise<void> {
    if (!this.port.isOpen) return Promise.resolve()
    // A port whose line was unplugged may fail to close cleanly; it is closed either way.
    return new Promise((resolve) => this.port.close(() => resolve()))
  }
}
