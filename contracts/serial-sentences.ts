/**
 * The serial line format between checkpoint readers, patrol-wand docks and the gateway
 * (docs/inputs/serial.md): NMEA-0183-style ASCII sentences,
 *
 *   $<type>,<field>,<field>,...*hh\r\n
 *
 * where hh is the XOR of every byte between `$` and `*`, as two upper-case hex digits (NMEA 0183,
 * "checksum field"). This module is the grammar: checksum, encoding, and the fields of each
 * sentence. Cutting a byte stream into sentences is serial-framer.ts.
 */

/** Longest sentence, `$` to `\n` inclusive. The longest wand record (64-character ids and tag) is 237. */
export const MAX_SENTENCE_BYTES = 256

/** A reader's or wand's frame number, echoed in the gateway's reply: 1 to 9 decimal digits. */
export const MAX_SEQ = 999_999_999

/** A live scan at a fixed checkpoint reader. */
export interface ReaderScan {
  type: 'GWSCN'
  device: string
  seq: number
  tag: string
  /** Epoch ms of the scan by the reader's clock; undefined when the reader has none (the gateway's receive time is used). */
  time: number | undefined
}

/** One stored scan uploaded from a patrol wand in its dock: each keeps its own scan time. */
export interface WandRecord {
  type: 'GWWSC'
  device: string
  seq: number
  /** The patrol staff the wand was issued to when it scanned; undefined when the wand does not know. */
  staff: string | undefined
  tag: string
  time: number
}

/** The gateway's reply: the frame is committed (or was already), the device may forget it. */
export interface Ack {
  type: 'GWACK'
  device: string
  seq: number
}

/** The gateway's reply: the frame can never be accepted; `code` is from gateway/errors.ts. */
export interface Nak {
  type: 'GWNAK'
  device: string
  seq: number
  code: string
}

export type Sentence = ReaderScan | WandRecord | Ack | Nak

export type ParseResult =
  | { ok: true; sentence: Sentence }
  /** Device and seq are set when they could be read, so the sender can be told (a NAK). */
  | { ok: false; reason: string; message: string; device?: string; seq?: number }

const IDENT = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/
/** Tag ids are hex in practice; `,`, `*` and `$` can never appear in a field. */
const TAG = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/
const SEQ = /^\d{1,9}$/
const CODE = /^[A-Z][A-Z0-9_]{0,63}$/
/** ISO 8601 basic format in UTC, optionally with milliseconds: 20261126T135235Z, 20261126T135235.120Z. */
const TIME = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?:\.(\d{1,3}))?Z$/

/** XOR of the bytes of `body` (the text between `$` and `*`). */
export function checksum(body: string): number {
  let x = 0
  for (let i = 0; i < body.length; i++) x ^= body.charCodeAt(i) & 0xff
  return x
}

export function hex2(n: number): string {
  return (n < 16 ? '0' : '') + n.toString(16).toUpperCase()
}

/** A complete line: `$body*hh\r\n`. */
export function frame(body: string): string {
  return `$${body}*${hex2(checksum(body))}\r\n`
}

/** UTC time in the line format; milliseconds only when there are any. */
export function formatTime(ms: number): string {
  const iso = new Date(ms).toISOString() // 2026-11-26T13:52:35.120Z
  const millis = iso.slice(20, 23)
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}${millis === '000' ? '' : `.${millis}`}Z`
}

export function parseTime(text: string): number | undefined {
  const m = TIME.exec(text)
  if (!m) return undefined
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number]
  // Date.UTC reads years 0–99 as 1900–1999 (00200229 would be 29 Feb 1920), and no reader or wand
  // scanned anything before 2000: such a year is a broken clock or a garbled field, not a time.
  if (y < 2000) return undefined
  const ms = m[7] === undefined ? 0 : Number(m[7].padEnd(3, '0'))
  const t = Date.UTC(y, mo - 1, d, h, mi, s, ms)
  // Date.UTC rolls month 13 or second 61 over into the next unit; the line format does not.
  const back = new Date(t)
  if (
    back.getUTCFullYear() !== y ||
    back.getUTCMonth() !== mo - 1 ||
    back.getUTCDate() !== d ||
    back.getUTCHours() !== h ||
    back.getUTCMinutes() !== mi ||
    back.getUTCSeconds() !== s
  ) {
    return undefined
  }
  return t
}

export function encode(s: Sentence): string {
  switch (s.type) {
    case 'GWSCN':
      return frame(`GWSCN,${s.device},${s.seq},${s.tag},${s.time === undefined ? '' : formatTime(s.time)}`)
    case 'GWWSC':
      return frame(`GWWSC,${s.device},${s.seq},${s.staff ?? ''},${s.tag},${formatTime(s.time)}`)
    case 'GWACK':
      return frame(`GWACK,${s.device},${s.seq}`)
    case 'GWNAK':
      return frame(`GWNAK,${s.device},${s.seq},${s.code}`)
  }
}

const fieldCount = { GWSCN: 5, GWWSC: 6, GWACK: 3, GWNAK: 4 } as const

/** Parses a sentence body (between `$` and `*`, checksum already verified) into its fields. */
export function parse(body: string): ParseResult {
  const f = body.split(',')
  const type = f[0] ?? ''
  if (!Object.hasOwn(fieldCount, type)) return { ok: false, reason: 'unknown_sentence', message: `unknown sentence type "${type.slice(0, 8)}"` }
  const t = type as keyof typeof fieldCount
  const device = f[1] ?? ''
  const seqText = f[2] ?? ''
  if (!IDENT.test(device) || !SEQ.test(seqText)) return { ok: false, reason: 'bad_field', message: `${t}: device or frame number unreadable` }
  const seq = Number(seqText)
  const fail = (message: string): ParseResult => ({ ok: false, reason: 'bad_field', message: `${t}: ${message}`, device, seq })
  if (f.length !== fieldCount[t]) return fail(`${f.length} fields, expected ${fieldCount[t]}`)
  switch (t) {
    case 'GWSCN': {
      const [, , , tag, time] = f as [string, string, string, string, string]
      if (!TAG.test(tag)) return fail('tag unreadable')
      const ms = time === '' ? undefined : parseTime(time)
      if (time !== '' && ms === undefined) return fail(`time "${time}" is not YYYYMMDDThhmmss[.sss]Z`)
      return { ok: true, sentence: { type: t, device, seq, tag, time: ms } }
    }
    case 'GWWSC': {
      const [, , , staff, tag, time] = f as [string, string, string, string, string, string]
      if (staff !== '' && !IDENT.test(staff)) return fail('staff id unreadable')
      if (!TAG.test(tag)) return fail('tag unreadable')
      // A stored scan without its own time cannot be placed on a tour: the upload time says nothing.
      const ms = parseTime(time)
      if (ms === undefined) return fail(`time "${time}" is not YYYYMMDDThhmmss[.sss]Z`)
      return { ok: true, sentence: { type: t, device, seq, staff: staff === '' ? undefined : staff, tag, time: ms } }
    }
    case 'GWACK':
      return { ok: true, sentence: { type: t, device, seq } }
    case 'GWNAK': {
      const code = f[3] ?? ''
      if (!CODE.test(code)) return fail('code unreadable')
      return { ok: true, sentence: { type: t, device, seq, code } }
    }
  }
}
