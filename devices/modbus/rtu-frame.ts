/**
 * Modbus RTU framing for the simulated slaves: address, PDU, CRC (Modbus over Serial Line §2.5.1).
 * Written here, not taken from the client library, so the gateway is tested against an independent
 * implementation of the same spec.
 */

/**
 * CRC-16/MODBUS: reflected polynomial 0xA001, initial 0xFFFF (Modbus over Serial Line §6.2.2).
 * Sent low byte first, the one field of an RTU frame that is little-endian.
 */
export function crc16(bytes: Uint8Array): number {
  let crc = 0xffff
  for (const byte of bytes) {
    crc ^= byte
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1
  }
  return crc
}

/** Address + PDU + CRC. */
export function rtuFrame(unit: number, pdu: Uint8Array): Buffer {
  const frame = Buffer.alloc(pdu.length + 3)
  frame[0] = unit
  frame.set(pdu, 1)
  frame.writeUInt16LE(crc16(frame.subarray(0, -2)), frame.length - 2)
  return frame
}

export function crcHolds(frame: Uint8Array): boolean {
  if (frame.length < 4) return false
  const body = frame.subarray(0, frame.length - 2)
  return crc16(body) === (frame[frame.length - 2] | (frame[frame.length - 1] << 8))
}

/** FC03/FC04 request: address(1) fc(1) start(2) quantity(2) crc(2) (Modbus Application Protocol §6.3, §6.4). */
export const READ_REQUEST_LENGTH = 8

export interface ReadRequest {
  unit: number
  functionCode: number
  start: number
  count: number
}

export function readRequest(unit: number, functionCode: 3 | 4, start: number, count: number): Buffer {
  const pdu = Buffer.alloc(5)
  pdu[0] = functionCode
  pdu.writeUInt16BE(start, 1)
  pdu.writeUInt16BE(count, 3)
  return rtuFrame(unit, pdu)
}

/** Response: fc, byte count, registers big-endian (Modbus Application Protocol §4.2). */
export function readResponse(unit: number, functionCode: number, registers: readonly number[]): Buffer {
  const pdu = Buffer.alloc(2 + registers.length * 2)
  pdu[0] = functionCode
  pdu[1] = registers.length * 2
  registers.forEach((r, i) => pdu.writeUInt16BE(r & 0xffff, 2 + i * 2))
  return rtuFrame(unit, pdu)
}

/** Exception response: fc | 0x80, exception code (Modbus Application Protocol §7). */
export function exceptionResponse(unit: number, functionCode: number, exception: number): Buffer {
  return rtuFrame(unit, Uint8Array.of(functionCode | 0x80, exception))
}
