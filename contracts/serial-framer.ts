/**
 * Cuts a serial byte stream into checksummed sentences (serial-sentences.ts). A serial line has
 * no packet boundaries: a read may hold half a sentence or several, and a noisy line (a long RS-485
 * run beside a welding shop, a reader powering up) puts garbage between and inside them. So:
 *
 * - `$` always starts a sentence: a `$` inside one means its end was lost, and the framer resyncs
 *   on the new `$` (NMEA 0183 receivers do the same);
 * - bytes outside a sentence are noise, except the CR/LF that end lines; a run of noise is reported
 *   once, when the next `$` ends it, however many reads it came in (or every MAX_NOISE_RUN bytes,
 *   so a line carrying nothing but noise is still reported);
 * - a sentence longer than MAX_SENTENCE_BYTES is dropped, and so is everything up to the next `$`,
 *   so a line stuck sending garbage cannot grow a buffer;
 * - only a sentence whose `*hh` matches the XOR of its body is handed on.
 */
import { checksum, MAX_SENTENCE_BYTES } from './serial-sentences.ts'

/** The longest run of noise reported as one: a line that never sends a `$` is still reported. */
export const MAX_NOISE_RUN = 4096

/** Why bytes were dropped; also the metric label. */
export type FramingFault = 'noise' | 'bad_checksum' | 'no_checksum' | 'truncated' | 'oversized'

export interface FramerHandlers {
  /** A sentence whose checksum holds: the text between `$` and `*`. */
  sentence(body: string): void
  /** Dropped bytes: `bytes` is how many (for noise, the run; for a sentence, its length so far). */
  fault(fault: FramingFault, bytes: number): void
}

const DOLLAR = 0x24
const STAR = 0x2a
const CR = 0x0d
const LF = 0x0a

const enum State {
  /** Between sentences: everything but CR/LF is noise. */
  Hunting,
  /** After `$`: collecting the sentence. */
  InSentence,
  /** An oversized sentence: dropping bytes until the next `$`. */
  Discarding,
}

export class SentenceFramer {
  private state = State.Hunting
  /** The sentence after its `$`, up to (not including) the LF. */
  private readonly buf: Buffer
  private len = 0
  private noise = 0

  constructor(
    private readonly on: FramerHandlers,
    private readonly maxBytes = MAX_SENTENCE_BYTES,
  ) {
    this.buf = Buffer.allocUnsafe(maxBytes)
  }

  /** Forget a half-read sentence (the port was closed and reopened: its rest will never come). */
  reset(): void {
    // Noise already received is reported, not forgotten.
    this.flushNoise()
    this.state = State.Hunting
    this.len = 0
    this.noise = 0
  }

  push(chunk: Buffer): void {
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]
      switch (this.state) {
        case State.Hunting:
          if (b === DOLLAR) {
            this.flushNoise()
            this.begin()
          } else if (b !== CR && b !== LF) {
            if (++this.noise >= MAX_NOISE_RUN) this.flushNoise()
          }
          break
        case State.Discarding:
          if (b === DOLLAR) this.begin()
          break
        case State.InSentence:
          if (b === LF) {
            this.complete()
          } else if (b === DOLLAR) {
            this.on.fault('truncated', this.len + 1)
            this.begin()
          } else if (this.len + 2 >= this.maxBytes) {
            // `$` and LF count towards the limit, so a sentence of exactly maxBytes still fits.
            this.on.fault('oversized', this.len + 2)
            this.state = State.Discarding
          } else {
            this.buf[this.len++] = b
          }
          break
      }
    }
  }

  private begin(): void {
    this.state = State.InSentence
    this.len = 0
  }

  private flushNoise(): void {
    if (this.noise === 0) return
    const n = this.noise
    this.noise = 0
    this.on.fault('noise', n)
  }

  private complete(): void {
    this.state = State.Hunting
    let end = this.len
    if (end > 0 && this.buf[end - 1] === CR) end--
    // `*hh` ends every sentence; NMEA 0183 makes it optional for some talkers, this format does not.
    const star = end - 3
    if (star < 0 || this.buf[star] !== STAR) {
      this.on.fault('no_checksum', this.len + 2)
      return
    }
    const claimed = hexValue(this.buf[star + 1], this.buf[star + 2])
    const body = this.buf.toString('latin1', 0, star)
    if (claimed < 0 || claimed !== checksum(body)) {
      this.on.fault('bad_checksum', this.len + 2)
      return
    }
    this.on.sentence(body)
  }
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  // NMEA 0183 writes upper case; lower case costs nothing to accept.
  if (c >= 0x61 && c <= 0x66) return c - 0x57
  return -1
}

function hexValue(hi: number, lo: number): number {
  const h = hexDigit(hi)
  const l = hexDigit(lo)
  return h < 0 || l < 0 ? -1 : (h << 4) | l
}
