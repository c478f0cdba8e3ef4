/** How long a reopened port must stay open, without a good sentence through it, before it counts as working. */
export const PORT_STABLE_MS = 5000

/**
 * Reconnect delays for a port that is gone: steps doubling from 2 × `minMs` up to `maxMs`, each
 * delay drawn from the upper half of its step ("equal jitter") and never below `minMs`, so
 * gateways that lost power together do not retry in lockstep, and a replugged dock is found
 * within `maxMs`. It starts over only once a reopened port proved itself (a good sentence came
 * through it) or stayed open for `stableMs`: an adapter that opens and fails at once would
 * otherwise be retried at `minMs` forever.
 */
export class Backoff {
  private attempt = 0
  private openedAt: number | undefined

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
    private readonly stableMs = PORT_STABLE_MS,
  ) {}

  /** Consecutive failures so far. */
  get failures(): number {
    return this.attempt
  }

  next(): number {
    // The exponent stops growing once the cap is reached, so it can never overflow.
    const step = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.attempt + 1, 30))
    this.attempt++
    return Math.max(this.minMs, Math.round(step / 2 + (this.random() * step) / 2))
  }

  reset(): void {
    this.attempt = 0
  }

  /** The port opened; whether that ends the backoff is known only later. */
  opened(now = Date.now()): void {
    this.openedAt = now
  }

  /** A good sentence came through the port: it works. */
  proven(): void {
    this.attempt = 0
  }

  /** The port went away: the backoff starts over only if it had stayed up for `stableMs`. */
  closed(now = Date.now()): void {
    if (this.openedAt !== undefined && now - this.openedAt >= this.stableMs) this.attempt = 0
    this.openedAt = undefined
  }
}
