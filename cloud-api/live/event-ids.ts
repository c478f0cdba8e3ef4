/**
 * Live-stream event ids: `<center database epoch>-<token>`, where the token is one AES-128 block,
 * encrypted with a key only the center database holds: six zero bytes, two random bytes, and
 * the feed sequence in eight (base64url, 22 characters).
 *
 * Why not the sequence itself: it is one count for the whole center, so the gaps between the
 * ids a console received told it how many events other offices and enterprises had in between,
 * and a forged `Last-Event-ID` walked back and forth over the sequence showed where each of its
 * own events fell. A console only echoes its last id back; it needs no order. The epoch stays in
 * clear, so an id from another center database (one made anew) is told apart at once.
 *
 * - The zero bytes make a forged or damaged token fail to decode (one in 2^48 gets through), so
 *   nothing a caller invents is taken as a position in the feed.
 * - The random bytes make two ids for the same position differ: the id given with a notice (the
 *   feed's head at that moment) says nothing when compared with another.
 * - One cipher and one decipher are kept and fed a block at a time (ECB without padding has no
 *   state between blocks): an id is built for every frame sent to every console.
 */
import { createCipheriv, createDecipheriv, randomFillSync, type Cipher, type Decipher } from 'node:crypto'

export type ParsedEventId = { seq: number } | 'foreign' | 'unknown'

const TOKEN = /^([0-9a-f]{1,32})-([A-Za-z0-9_-]{22})$/

/** Random bytes drawn in bulk: one call per 1,024 ids rather than one per id. */
const POOL = 2 * 1024

export class EventIds {
  private readonly cipher: Cipher
  private readonly decipher: Decipher
  private readonly block = Buffer.alloc(16)
  private readonly pool = Buffer.alloc(POOL)
  private used = POOL

  constructor(
    readonly epoch: string,
    key: Buffer,
  ) {
    if (key.length !== 16) throw new Error('an event id key is 16 bytes')
    this.cipher = createCipheriv('aes-128-ecb', key, null).setAutoPadding(false)
    this.decipher = createDecipheriv('aes-128-ecb', key, null).setAutoPadding(false)
  }

  format(seq: number): string {
    if (this.used === POOL) {
      randomFillSync(this.pool)
      this.used = 0
    }
    this.block.fill(0, 0, 6)
    this.pool.copy(this.block, 6, this.used, this.used + 2)
    this.used += 2
    this.block.writeBigUInt64BE(BigInt(seq), 8)
    return `${this.epoch}-${this.cipher.update(this.block).toString('base64url')}`
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
    const block = this.decipher.update(raw)
    if (block.length !== 16 || block.readUIntBE(0, 6) !== 0) return 'unknown'
    const seq = block.readBigUInt64BE(8)
    return seq > BigInt(Number.MAX_SAFE_INTEGER) ? 'unknown' : { seq: Number(seq) }
  }
}
