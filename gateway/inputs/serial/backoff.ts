/**
 * Reconnect delays for a port that is gone: steps doubling from 2 × `minMs` up to `maxMs`, each
 * delay drawn from the upper half of its step ("equal jitter") and never below `minMs`, so
 * gateways that lost power together do not retry in lockstep, and a replugged dock is found
 * within `maxMs`.
 */
export class Backoff {
  private attempt = 0

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
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
}
