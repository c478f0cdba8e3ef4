/**
 * Register maps, pure: which reads a slave's points need (contiguous registers batched into one
 * request), and how the registers that came back become values and status bits.
 */
import type { Bit, DataType, Point, RegisterFunction, ResolvedSlave } from './config.ts'

/** Function codes for the two register tables (Modbus Application Protocol §6.3 FC03, §6.4 FC04). */
export const FUNCTION_CODE: Record<RegisterFunction, 3 | 4> = { holding: 3, input: 4 }

/** FC03/FC04 read at most 125 registers per request (Modbus Application Protocol §6.3, §6.4). */
export const MAX_READ_REGISTERS = 125

export interface ReadBlock {
  function: RegisterFunction
  start: number
  count: number
}

export function registerWidth(type: DataType): 1 | 2 {
  return type === 'uint16' || type === 'int16' ? 1 : 2
}

/**
 * The fewest reads that cover every point and bit: per table, registers sorted and merged while
 * they touch or overlap, split at 125. Registers between two points are never read: a detector
 * may answer exception 02 (illegal data address) for a gap in its map.
 */
export function planReads(slave: Pick<ResolvedSlave, 'points' | 'bits'>): ReadBlock[] {
  const spans: { function: RegisterFunction; start: number; end: number }[] = [
    ...slave.points.map((p) => ({ function: p.function, start: p.address, end: p.address + registerWidth(p.type) })),
    ...slave.bits.map((b) => ({ function: b.function, start: b.address, end: b.address + 1 })),
  ]
  spans.sort((a, b) => (a.function === b.function ? a.start - b.start : a.function < b.function ? -1 : 1))
  const blocks: ReadBlock[] = []
  let open: { function: RegisterFunction; start: number; end: number } | undefined
  const close = () => {
    if (open) blocks.push({ function: open.function, start: open.start, count: open.end - open.start })
  }
  for (const s of spans) {
    if (open && s.function === open.function && s.start <= open.end && Math.max(open.end, s.end) - open.start <= MAX_READ_REGISTERS) {
      open.end = Math.max(open.end, s.end)
      continue
    }
    close()
    open = { ...s }
  }
  close()
  return blocks
}

/** The registers one poll brought back, by table and address. */
export class RegisterImage {
  private readonly tables: Record<RegisterFunction, Map<number, number>> = { holding: new Map(), input: new Map() }

  set(fn: RegisterFunction, start: number, values: readonly number[]): void {
    values.forEach((v, i) => this.tables[fn].set(start + i, v & 0xffff))
  }

  get(fn: RegisterFunction, address: number): number | undefined {
    return this.tables[fn].get(address)
  }
}

/** The raw number in a point's registers, before scale and offset; undefined when not all came back. */
export function rawValue(point: Pick<Point, 'function' | 'address' | 'type' | 'wordOrder'>, image: RegisterImage): number | undefined {
  const first = image.get(point.function, point.address)
  if (first === undefined) return undefined
  if (point.type === 'uint16') return first
  if (point.type === 'int16') return (first << 16) >> 16
  const second = image.get(point.function, point.address + 1)
  if (second === undefined) return undefined
  const [hi, lo] = point.wordOrder === 'big' ? [first, second] : [second, first]
  if (point.type === 'uint32') return hi * 0x10000 + lo
  if (point.type === 'int32') return (hi << 16) | lo
  const buf = Buffer.alloc(4)
  buf.writeUInt16BE(hi, 0)
  buf.writeUInt16BE(lo, 2)
  // float32 carries ~7 significant digits; more would show the binary rounding (21.3 → 21.299999).
  return Number(buf.readFloatBE(0).toPrecision(7))
}

/**
 * The point's value in its unit: raw × scale + offset, rounded to 10 significant digits so a
 * scale of 0.1 gives 12.3, not 12.300000000000001. Undefined when a register is missing or the
 * float is NaN/Infinity (a detector's "no value" pattern).
 */
export function pointValue(point: Point, image: RegisterImage): number | undefined {
  const raw = rawValue(point, image)
  if (raw === undefined || !Number.isFinite(raw)) return undefined
  const value = raw * point.scale + point.offset
  return Number.isFinite(value) ? Number(value.toPrecision(10)) : undefined
}

/** Whether a status bit is set; undefined when its register did not come back. */
export function bitValue(bit: Pick<Bit, 'function' | 'address' | 'mask'>, image: RegisterImage): boolean | undefined {
  const reg = image.get(bit.function, bit.address)
  return reg === undefined ? undefined : (reg & bit.mask) !== 0
}
