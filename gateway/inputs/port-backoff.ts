/**
 * Reopening a serial port that went away (a USB adapter unplugged, a reader's cable pulled): the
 * backoff the serial lines and the Modbus buses share.
 */

/** How long a reopened port must stay open, without anything good through it, before it counts as working. */
export const PORT_STABLE_MS = 5000

/**
 * Doubling from min to max, with jitter in [½, 1] of that so gateways on one power cut do not retry
 * in step; never below min, which is the promise `reconnectMinMs` makes. The exponent stops
 * growing at the cap, so no number of failures overflows it.
 */
export function backoffMs(attempt: number, minMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30))
  return Math.max(minMs, Math.round(ceiling * (0.5 + random() / 2)))
}

/**
 * The backoff of a port that keeps going away. It starts over only once the port proved itself
 * (a good sentence or a slave's answer came through it) or stayed open for `stableMs`: an adapter
 * that opens and fails at once would otherwise be retried at `minMs` forever.
 */
export class PortBackoff {
  private attempt = 0
  private openedAt: number | undefined

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly stableMs = PORT_STABLE_MS,
    private readonly random: () => number = Math.random,
  ) {}

  /** Attempts since the port last worked. */
  get failures(): number {
    return this.attempt
  }

  /** The delay before the next attempt to open. */
  next(): number {
    return backoffMs(this.attempt++, this.minMs, this.maxMs, this.random)
  }

  /** The port opened; whether that ends the backoff is known only later. */
  opened(now = Date.now()): void {
    this.openedAt = now
  }

  /** Something good came through the port: it works. */
  proven(): void {
    this.attempt = 0
  }

  /** The port went away: the backoff starts over only if it had stayed up for `stableMs`. */
  closed(now = Date.now()): void {
    if (this.openedAt !== undefined && now - this.openedAt >= this.stableMs) this.attempt = 0
    this.openedAt = undefined
  }
}
