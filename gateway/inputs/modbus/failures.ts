/**
 * What went wrong with one Modbus request, as a metric reason and a catalogue code. modbus-serial
 * reports failures as plain errors: `errno: 'ETIMEDOUT'` for a timeout, the message "CRC error",
 * and `modbusCode` for an exception response (function code | 0x80, then the exception code).
 */
import type { GatewayErrorCode } from '../../errors.ts'

/**
 * Exception codes, Modbus Application Protocol §7 (01–0B; 07 and 09 are not in the current table,
 * 07 is the older "negative acknowledge" some devices still send, 09 was never assigned).
 */
export const EXCEPTION_NAMES: Readonly<Record<number, string>> = {
  0x01: 'illegal_function',
  0x02: 'illegal_data_address',
  0x03: 'illegal_data_value',
  0x04: 'server_device_failure',
  0x05: 'acknowledge',
  0x06: 'server_device_busy',
  0x07: 'negative_acknowledge',
  0x08: 'memory_parity_error',
  0x0a: 'gateway_path_unavailable',
  0x0b: 'gateway_target_failed_to_respond',
}

export interface RequestFailure {
  /** The metric label: timeout, crc, bad_frame, or `exception_<name>`. */
  reason: string
  code: GatewayErrorCode
  /**
   * No valid answer came back: counts towards the slave going offline. An exception is an answer,
   * except 0A/0B, which a gateway sends for a slave that did not answer it.
   */
  silent: boolean
  exception?: number
  message: string
}

export function classify(err: unknown): RequestFailure {
  const e = (err ?? {}) as { errno?: unknown; message?: unknown; modbusCode?: unknown }
  const message = typeof e.message === 'string' ? e.message : String(err)
  if (typeof e.modbusCode === 'number') {
    const name = EXCEPTION_NAMES[e.modbusCode] ?? 'unknown'
    // 0A and 0B come from a gateway in front of the slave (an RTU-to-RTU or TCP bridge), and mean
    // the slave behind it did not answer (Modbus Application Protocol §7): they count towards
    // offline, or a dead detector behind a gateway would stay online for good.
    const silent = e.modbusCode === 0x0a || e.modbusCode === 0x0b
    return { reason: `exception_${name}`, code: 'GW_MODBUS_EXCEPTION', silent, exception: e.modbusCode, message }
  }
  if (e.errno === 'ETIMEDOUT') return { reason: 'timeout', code: 'GW_MODBUS_TIMEOUT', silent: true, message }
  if (message === 'CRC error') return { reason: 'crc', code: 'GW_MODBUS_CRC', silent: true, message }
  // Wrong length, another unit's address, another function code: a frame, but not our answer.
  return { reason: 'bad_frame', code: 'GW_MODBUS_FRAME_INVALID', silent: true, message }
}
