/** Timing of a bus, pure: when a slave is next due, the reconnect backoff, the silent interval. */

/**
 * The next poll time after one due at `due`: on the slave's own grid (no drift from how long the
 * poll took), and when the bus fell behind, the missed slots are skipped rather than fired in a
 * burst (no pile-up on a half-duplex line).
 */
export function nextDue(due: number, intervalMs: number, now: number): number {
  let next = due + intervalMs
  if (next < now) next += Math.ceil((now - next) / intervalMs) * intervalMs
  return next
}

/** Doubling from min to max, with jitter in [½, 1] of that so gateways on one power cut do not retry in step. */
export function backoffMs(attempt: number, minMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20))
  return Math.round(ceiling * (0.5 + random() / 2))
}

/**
 * The silent interval a master keeps between frames: 3.5 character times, a character being
 * 11 bits; fixed at 1.75 ms above 19200 baud (Modbus over Serial Line §2.5.1.1).
 */
export function interFrameMs(baudRate: number): number {
  return baudRate > 19_200 ? 1.75 : (3.5 * 11 * 1000) / baudRate
}
