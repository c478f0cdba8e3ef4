/**
 * Live-stream event ids: `<center database epoch>-<token>`, where the token is the feed sequence
 * encrypted with a key only the center database holds (AES-128 of one block: eight zero bytes,
 * then the sequence; base64url, 22 characters).
 *
 * Why not the sequence itself: it is one count for the whole center, so the gaps between the
 * ids a console received told it how many events other offices and enterprises had in between,
 * and a forged `Last-Event-ID` walked back and forth over the sequence showed where each of its
 * own events fell. A console only echoes its last id back; it needs no order. The epoch stays in
 * clear, so an id from another center database (one made anew) is told apart at once.
 *
 * The zero bytes make a forged or damaged token fail to decode (one in 2^64 gets through), so
 * nothing a caller invents is taken as a position in the feed.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto'

export type ParsedEventId = { seq: number } | 'foreign' | 'unknown'

const TOKEN = /^([0-9a-f]{1,32})-([A-Za-z0-9_-]{22})$/

export class EventIds {
  constructor(
    readonly epoch: string,
    private readonly key: Buffer,
  ) {
    if (key.length !== 16) throw new Error('an event id key is 16 bytes')
  }

  format(seq: number): string {
    const block = Buffer.alloc(16)
    block.writeBigUInt64BE(BigInt(seq), 8)
    const cipher = createCipheriv('aes-128-ecb', this.key, null).setAutoPadding(false)
    return `${this.epoch}-${Buffer.concat([cipher.update(block), cipher.final()]).toString('base64url')}`
  }

  /**
   * `foreign`: an id of another center database. `unknown`: not an id this center gave (forged,
   * damaged, or of the old numeric kind, which would reopen the walk over the sequence).
   */
  parse(id: string): ParsedEventId {
    const m = TOKEN.exec(id.trim())
    if (!m) return 'unknown'
    if (m[1] !== this.epoch) return 'foreign'
    const raw = Buffer.from(m[2], 'base64url')
    if (raw.length !== 16) return 'unknown'
    const decipher = createDecipheriv('aes-128-ecb', this.key, null).setAutoPadding(false)
    const block = Buffer.concat([decipher.update(raw), decipher.final()])
    if (block.readBigUInt64BE(0) !== 0n) return 'unknown'
    const seq = block.readBigUInt64BE(8)
    return seq > BigInt(Number.MAX_SAFE_INTEGER) ? 'unknown' : { seq: Number(seq) }
  }
}
