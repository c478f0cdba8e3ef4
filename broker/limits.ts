/**
 * The broker's protections that Aedes does not have: a packet size cap enforced on the byte
 * stream before mqtt-packet buffers a huge packet, and token buckets for rates.
 */

/**
 * Follows MQTT fixed headers across chunks (§2.2: one type byte, then a 1–4 byte "remaining
 * length") and skips bodies by arithmetic, so it costs a few operations per packet, not per byte.
 * Returns false as soon as a packet declares more than `maxBytes` or a malformed length.
 */
export class PacketSizeGuard {
  private state: 'type' | 'length' | 'body' = 'type'
  private length = 0
  private multiplier = 1
  private lengthBytes = 0
  private bodyLeft = 0
  /** Why the stream was refused, once `feed` has returned false. */
  refusal: 'packet_too_large' | 'malformed_length' | undefined

  constructor(private readonly maxBytes: number) {}

  feed(chunk: Buffer): boolean {
    let i = 0
    while (i < chunk.length) {
      if (this.state === 'body') {
        const take = Math.min(this.bodyLeft, chunk.length - i)
        this.bodyLeft -= take
        i += take
        if (this.bodyLeft === 0) this.state = 'type'
        continue
      }
      const byte = chunk[i++]
      if (this.state === 'type') {
        this.state = 'length'
        this.length = 0
        this.multiplier = 1
        this.lengthBytes = 0
        continue
      }
      this.length += (byte & 0x7f) * this.multiplier
      this.multiplier *= 128
      this.lengthBytes++
      if (byte & 0x80) {
        if (this.lengthBytes >= 4) {
          this.refusal = 'malformed_length'
          return false
        }
        continue
      }
      if (this.length > this.maxBytes) {
        this.refusal = 'packet_too_large'
        return false
      }
      this.bodyLeft = this.length
      this.state = this.length === 0 ? 'type' : 'body'
    }
    return true
  }
}

/** A token bucket: `rate` per second, holding at most `burst`. */
export class TokenBucket {
  private tokens: number
  private last: number

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now = Date.now(),
  ) {
    this.tokens = burst
    this.last = now
  }

  /** Takes one token if there is one. */
  take(now = Date.now()): boolean {
    this.refill(now)
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }

  /** Milliseconds until a token will be there (0 if one is). */
  waitMs(now = Date.now()): number {
    this.refill(now)
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.rate) * 1000)
  }

  /** True when the bucket is full again, so its owner can forget it. */
  idle(now = Date.now()): boolean {
    this.refill(now)
    return this.tokens >= this.burst
  }

  private refill(now: number): void {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate)
      this.last = now
    }
  }
}

/** One bucket per key (an IP address), forgotten once full again so the map cannot grow forever. */
export class KeyedRateLimit {
  private readonly buckets = new Map<string, TokenBucket>()
  private lastSweep = Date.now()

  constructor(
    private readonly rate: number,
    private readonly burst = Math.max(1, rate),
  ) {}

  take(key: string, now = Date.now()): boolean {
    if (now - this.lastSweep > 10_000) this.sweep(now)
    let bucket = this.buckets.get(key)
    if (!bucket) {
      bucket = new TokenBucket(this.rate, this.burst, now)
      this.buckets.set(key, bucket)
    }
    return bucket.take(now)
  }

  get size(): number {
    return this.buckets.size
  }

  private sweep(now: number): void {
    this.lastSweep = now
    for (const [key, bucket] of this.buckets) if (bucket.idle(now)) this.buckets.delete(key)
  }
}
