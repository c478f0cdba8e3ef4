/**
 * Keeps a flood of identical warnings (one bad device sending garbage 1,000 times a second) from
 * drowning the log: at most one line per key per interval, carrying how many were held back.
 */
export class LogLimiter {
  private readonly last = new Map<string, { at: number; held: number }>()

  constructor(
    private readonly intervalMs = 10_000,
    private readonly maxKeys = 10_000,
  ) {}

  /** Returns the number of lines held back since the last one, or -1 if this one is held back too. */
  take(key: string, now = Date.now()): number {
    const entry = this.last.get(key)
    if (entry && now - entry.at < this.intervalMs) {
      entry.held++
      return -1
    }
    if (!entry && this.last.size >= this.maxKeys) this.last.clear()
    const held = entry?.held ?? 0
    this.last.set(key, { at: now, held: 0 })
    return held
  }
}
