/**
 * The serial line format (contracts/serial-sentences.ts) and its framer (contracts/serial-framer.ts):
 * checksums against NMEA 0183's own examples, every sentence's fields, and the framer's behaviour
 * on split, merged, noisy, corrupted and oversized input; also the pure parts of the input
 * (reconnect backoff, line config checks).
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { MAX_NOISE_RUN, SentenceFramer, type FramingFault } from '../../contracts/serial-framer.ts'
import { checksum, encode, formatTime, frame, MAX_SENTENCE_BYTES, parse, parseTime } from '../../contracts/serial-sentences.ts'
import type { GatewayConfig } from '../../gateway/config/schema.ts'
import { checkSerialInputs, resolveLine } from '../../gateway/inputs/serial/config.ts'

function collect() {
  const sentences: string[] = []
  const faults: [FramingFault, number][] = []
  const framer = new SentenceFramer({ sentence: (b) => sentences.push(b), fault: (f, n) => faults.push([f, n]) })
  return { framer, sentences, faults, push: (s: string | Buffer) => framer.push(typeof s === 'string' ? Buffer.from(s, 'latin1') : s) }
}

const scan = '$GWSCN,reader-01,1,04A1B2C3D4E5F6,20261126T080000Z*56\r\n'
const record = '$GWWSC,wand-01,7,staff-li-na,04A1B2C3D4E5F8,20261126T201502Z*12\r\n'

describe('checksum', () => {
  it('is the XOR of the bytes between $ and *, as in NMEA 0183 examples', () => {
    // The two sentences every NMEA 0183 primer quotes, with their published checksums.
    expect(checksum('GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,')).toBe(0x47)
    expect(checksum('GPGLL,4916.45,N,12311.12,W,225444,A,')).toBe(0x1d)
    expect(frame('GPGLL,4916.45,N,12311.12,W,225444,A,')).toBe('$GPGLL,4916.45,N,12311.12,W,225444,A,*1D\r\n')
  })

  it('every example sentence in docs/inputs/serial.md carries a checksum that holds', () => {
    const doc = readFileSync(new URL('../../docs/inputs/serial.md', import.meta.url), 'utf8')
    const examples = doc.split('\n').filter((l) => /^\$GW[A-Z]{3},\S*\*[0-9A-F]{2}$/.test(l))
    expect(examples.length).toBeGreaterThanOrEqual(5)
    const { push, sentences, faults } = collect()
    for (const e of examples) push(`${e}\r\n`)
    expect(faults).toEqual([])
    expect(sentences).toHaveLength(examples.length)
    for (const s of sentences) expect(parse(s)).toMatchObject({ ok: true })
  })
})

describe('sentences', () => {
  it('a live reader scan keeps the reader, frame number, tag and time', () => {
    expect(parse('GWSCN,reader-01,1,04A1B2C3D4E5F6,20261126T080000Z')).toEqual({
      ok: true,
      sentence: { type: 'GWSCN', device: 'reader-01', seq: 1, tag: '04A1B2C3D4E5F6', time: Date.UTC(2026, 10, 26, 8, 0, 0) },
    })
  })

  it('a reader without a clock leaves the time empty', () => {
    expect(parse('GWSCN,reader-01,42,04A1B2C3D4E5F7,')).toMatchObject({ ok: true, sentence: { seq: 42, time: undefined } })
  })

  it('a stored wand scan keeps its own time (milliseconds too) and the staff', () => {
    const time = Date.UTC(2026, 10, 26, 20, 15, 2, 120)
    const text = encode({ type: 'GWWSC', device: 'wand-01', seq: 7, staff: 'staff-li-na', tag: '04A1B2C3D4E5F8', time })
    expect(text).toBe(frame('GWWSC,wand-01,7,staff-li-na,04A1B2C3D4E5F8,20261126T201502.120Z'))
    expect(parse(text.slice(1, -5))).toEqual({ ok: true, sentence: { type: 'GWWSC', device: 'wand-01', seq: 7, staff: 'staff-li-na', tag: '04A1B2C3D4E5F8', time } })
  })

  it('ACK and NAK round-trip', () => {
    for (const s of [
      { type: 'GWACK', device: 'wand-01', seq: 999_999_999 },
      { type: 'GWNAK', device: 'reader-01', seq: 2, code: 'GW_DEVICE_UNKNOWN' },
    ] as const) {
      expect(parse(encode(s).slice(1, -5))).toEqual({ ok: true, sentence: s })
    }
  })

  it.each([
    ['an unknown sentence type', 'GWXYZ,reader-01,1', 'unknown_sentence', undefined],
    ['a frame number that is not decimal', 'GWSCN,reader-01,x1,04A1,', 'bad_field', undefined],
    ['a device id with a space', 'GWSCN,reader 01,1,04A1,', 'bad_field', undefined],
    ['too many fields', 'GWSCN,reader-01,3,04A1,,extra', 'bad_field', 3],
    ['a wand scan without its time', 'GWWSC,wand-01,4,staff-li-na,04A1,', 'bad_field', 4],
    ['an impossible date', 'GWWSC,wand-01,5,,04A1,20261331T250000Z', 'bad_field', 5],
    ['a local time without Z', 'GWSCN,reader-01,6,04A1,20261126T080000', 'bad_field', 6],
  ])('refuses %s, keeping the frame number when it was readable', (_name, body, reason, seq) => {
    const r = parse(body)
    expect(r).toMatchObject({ ok: false, reason })
    expect(r.ok ? undefined : r.seq).toBe(seq)
  })

  it('times are ISO 8601 basic format in UTC', () => {
    expect(formatTime(Date.UTC(2026, 0, 2, 3, 4, 5))).toBe('20260102T030405Z')
    expect(parseTime('20260102T030405.5Z')).toBe(Date.UTC(2026, 0, 2, 3, 4, 5, 500))
    expect(parseTime('20260230T000000Z')).toBeUndefined()
  })

  it('refuses years before 2000, which Date.UTC would read as 1900–1999', () => {
    // Date.UTC alone would accept this as 29 February 1920.
    expect(parseTime('00200229T000000Z')).toBeUndefined()
    expect(parseTime('00990101T000000Z')).toBeUndefined()
    expect(parseTime('19991231T235959Z')).toBeUndefined()
    expect(parseTime('20000101T000000Z')).toBe(Date.UTC(2000, 0, 1))
    expect(parse('GWWSC,wand-01,8,,04A1,00200229T000000Z')).toMatchObject({ ok: false, reason: 'bad_field', seq: 8 })
  })
})

describe('framer', () => {
  it('reassembles a sentence split at every possible byte', () => {
    for (let cut = 1; cut < scan.length; cut++) {
      const { push, sentences, faults } = collect()
      push(scan.slice(0, cut))
      push(scan.slice(cut))
      expect(sentences, `cut at ${cut}`).toEqual([scan.slice(1, -5)])
      expect(faults).toEqual([])
    }
  })

  it('splits several sentences in one chunk, and takes LF alone as a line end', () => {
    const { push, sentences, faults } = collect()
    push(scan + record + scan.replace('\r\n', '\n'))
    expect(sentences).toEqual([scan.slice(1, -5), record.slice(1, -5), scan.slice(1, -5)])
    expect(faults).toEqual([])
  })

  it('counts noise between sentences as runs, and resyncs on $', () => {
    const { push, sentences, faults } = collect()
    push(`\u0000\u00ffgarbage${scan}\r\n\r\nxx`)
    push(record)
    expect(sentences).toEqual([scan.slice(1, -5), record.slice(1, -5)])
    // CR/LF between sentences are line ends, not noise; a run is reported when the next $ ends it.
    expect(faults).toEqual([
      ['noise', 9],
      ['noise', 2],
    ])
  })

  it('counts one run of noise once, however many reads it arrived in (docs/inputs/serial.md)', () => {
    const { push, sentences, faults } = collect()
    for (const c of ['ab', 'c', '\r\nde', 'f']) push(c)
    expect(faults).toEqual([])
    push(scan)
    expect(sentences).toEqual([scan.slice(1, -5)])
    expect(faults).toEqual([['noise', 6]])
  })

  it('reports a line of nothing but noise every MAX_NOISE_RUN bytes', () => {
    const { push, faults } = collect()
    const junk = Buffer.alloc(100, 0x55)
    for (let i = 0; i < (MAX_NOISE_RUN * 2.5) / 100; i++) push(junk)
    expect(faults).toEqual([
      ['noise', MAX_NOISE_RUN],
      ['noise', MAX_NOISE_RUN],
    ])
  })

  it('drops a sentence cut short by a new $ and keeps the next one', () => {
    const { push, sentences, faults } = collect()
    push(`$GWSCN,reader-01,9,04A1${record}`)
    expect(sentences).toEqual([record.slice(1, -5)])
    expect(faults).toEqual([['truncated', '$GWSCN,reader-01,9,04A1'.length]])
  })

  it('drops a sentence whose checksum does not hold, or that has none', () => {
    const { push, sentences, faults } = collect()
    push(scan.replace('*56', '*57'))
    push(scan.replace('reader-01', 'reader-02'))
    push('$GWACK,reader-01,1\r\n')
    push(scan.replace('*56', '*5G'))
    expect(sentences).toEqual([])
    expect(faults.map((f) => f[0])).toEqual(['bad_checksum', 'bad_checksum', 'no_checksum', 'bad_checksum'])
  })

  it('accepts lower-case hex in the checksum', () => {
    const { push, sentences } = collect()
    push('$GWACK,wand-01,1000*3e\r\n'.replace('3e', checksum('GWACK,wand-01,1000').toString(16).toLowerCase()))
    expect(sentences).toEqual(['GWACK,wand-01,1000'])
  })

  it('drops an oversized sentence and everything up to the next $, whatever the chunking', () => {
    const long = `$GWSCN,reader-01,1,${'A'.repeat(MAX_SENTENCE_BYTES)},*00\r\n`
    for (const chunk of [1, 7, 64, 4096]) {
      const { push, sentences, faults } = collect()
      const all = Buffer.from(long + scan, 'latin1')
      for (let i = 0; i < all.length; i += chunk) push(all.subarray(i, i + chunk))
      expect(sentences, `chunk ${chunk}`).toEqual([scan.slice(1, -5)])
      expect(faults, `chunk ${chunk}`).toEqual([['oversized', MAX_SENTENCE_BYTES]])
    }
  })

  it('takes a sentence of exactly the maximum length', () => {
    const body = `GWSCN,reader-01,1,${'B'.repeat(MAX_SENTENCE_BYTES - '$GWSCN,reader-01,1,,*hh\r\n'.length)},`
    const text = frame(body)
    expect(text.length).toBe(MAX_SENTENCE_BYTES)
    const { push, sentences, faults } = collect()
    push(text)
    expect(faults).toEqual([])
    expect(sentences).toEqual([body])
  })

  it('refuses a sentence one byte over the maximum', () => {
    const text = frame(`GWSCN,reader-01,1,${'B'.repeat(MAX_SENTENCE_BYTES - '$GWSCN,reader-01,1,,*hh\r\n'.length + 1)},`)
    const { push, sentences, faults } = collect()
    push(text)
    expect(sentences).toEqual([])
    expect(faults).toEqual([['oversized', MAX_SENTENCE_BYTES]])
  })

  it('forgets a half-read sentence on reset (a replugged port)', () => {
    const { framer, push, sentences, faults } = collect()
    push(scan.slice(0, 20))
    framer.reset()
    push(`${scan.slice(20)}${scan}`)
    expect(sentences).toEqual([scan.slice(1, -5)])
    expect(faults).toEqual([['noise', scan.length - 22]])
  })
})

describe('line config', () => {
  const devices = [
    { id: 'reader-01', type: 'checkpoint-reader', via: 'serial' },
    { id: 'wand-01', type: 'patrol-wand', via: 'serial' },
    { id: 'gas-001', type: 'gas-detector', via: 'serial' },
    { id: 'phone-001', type: 'patrol-phone' },
  ] as GatewayConfig['devices']
  const check = (serial: unknown[]) => checkSerialInputs({ devices, inputs: { serial } as GatewayConfig['inputs'] })

  it('names the path of each problem', () => {
    expect(
      check([
        { id: 'a', path: '/dev/ttyUSB0', devices: ['reader-01', 'wand-01', 'nobody', 'phone-001', 'gas-001'] },
        { id: 'a', path: '/dev/ttyUSB0', devices: ['reader-01', 'wand-01'], reconnectMinMs: 5000, reconnectMaxMs: 1000 },
      ]),
    ).toEqual([
      { path: '/inputs/serial/0/devices/2', message: 'no device "nobody" in /devices' },
      { path: '/inputs/serial/0/devices/3', message: 'device "phone-001" is not via: serial' },
      { path: '/inputs/serial/0/devices/4', message: 'device "gas-001" is a gas-detector; serial lines carry checkpoint readers and patrol wands' },
      { path: '/inputs/serial/1/id', message: 'duplicate line id "a"' },
      { path: '/inputs/serial/1/path', message: '"/dev/ttyUSB0" is already another line' },
      { path: '/inputs/serial/1/reconnectMinMs', message: 'must not be above reconnectMaxMs' },
      { path: '/inputs/serial/1/devices/0', message: 'reader "reader-01" is already on another line' },
    ])
  })

  it('lets a wand be docked on several lines', () => {
    expect(check([{ id: 'a', path: '/dev/ttyUSB0', devices: ['wand-01'] }, { id: 'b', path: '/dev/ttyUSB1', devices: ['wand-01'] }])).toEqual([])
  })

  it('fills in 9600 8N1 and the reconnect defaults', () => {
    expect(resolveLine({ id: 'a', path: '/dev/ttyS0', devices: ['reader-01'] })).toEqual({
      id: 'a',
      path: '/dev/ttyS0',
      baudRate: 9600,
      parity: 'none',
      dataBits: 8,
      stopBits: 1,
      devices: ['reader-01'],
      reconnectMinMs: 500,
      reconnectMaxMs: 10_000,
    })
  })
})
