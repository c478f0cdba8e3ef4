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

/** Bits one character takes on the line: start, data, parity when there is one, stop (Modbus over Serial Line §2.5.1). */
export function characterBits(framing: { dataBits: number; parity: string; stopBits: number }): number {
  return 1 + framing.dataBits + (framing.parity === 'none' ? 0 : 1) + framing.stopBits
}

/** An FC03/FC04 request: address, function, start, quantity, CRC (Modbus Application Protocol §6.3, §6.4). */
export const READ_REQUEST_BYTES = 8

/** An FC03/FC04 answer: address, function, byte count, 2 bytes a register, CRC; 255 bytes for 125 registers. */
export function readAnswerBytes(count: number): number {
  return 5 + 2 * count
}

/**
 * How long to wait for the answer to a read of `count` registers: `timeoutMs` plus the time the
 * request and the answer take on the wire. modbus-serial starts its timer when the request is
 * handed to the port, and a 125-register answer alone takes ~292 ms at 9600 baud 8E1 and 9.4 s
 * at 300 baud: a plain `timeoutMs` would time out slaves that answer at once.
 */
export function requestTimeoutMs(
  bus: { baudRate: number; dataBits: number; parity: string; stopBits: number; timeoutMs: number },
  count: number,
): number {
  const bytes = READ_REQUEST_BYTES + readAnswerBytes(count)
  return Math.ceil(bus.timeoutMs + (bytes * characterBits(bus) * 1000) / bus.baudRate)
}

/**
 * The silent interval a master keeps between frames: 3.5 character times, a character being
 * 11 bits; fixed at 1.75 ms above 19200 baud (Modbus over Serial Line §2.5.1.1).
 */
export function interFrameMs(baudRate: number): number {
  return baudRate > 19_200 ? 1.75 : (3.5 * 11 * 1000) / baudRate
}
