/**
 * Envelopes as InfluxDB 1.x line protocol, written directly: the same points `toPoint()` in
 * influx-store.ts describes (measurement, tags, fields, timestamp; see the schema there), without
 * building a point object per envelope and running the `influx` package's generic escaper over
 * every key and value. test/unit/line-protocol.test.ts holds the two to the same bytes.
 *
 *   <measurement>[,<tag>=<value>...] <field>=<value>[,<field>=<value>...] <timestamp ns>
 *
 * Escaping (InfluxDB 1.x line protocol reference, "Special characters"):
 * - measurement: `,` and space. Ours are fixed names that need none.
 * - tag keys, tag values, field keys: `,` `=` and space. Tag keys and field keys are fixed names
 *   here; tag values are escaped.
 * - string field values: in double quotes, with `"` and `\` escaped. A newline is written as it
 *   is: InfluxDB 1.x's parser does not end a line inside a quoted field value, and the contract
 *   suites round-trip text with newlines through a real influxd (as the `influx` package, which
 *   writes them the same way, always did). The docs say newlines are "not supported" in field
 *   values; if a later server stops accepting them, this is the one place to change.
 * - numbers: as JavaScript writes them (`12.5`, `3`, `1e+21`), which InfluxDB reads as floats.
 *   Every numeric field, integer-valued ones included (count, channel, from_ms, suppressed), is
 *   a float, as it always was: InfluxDB refuses a point whose field changes type, so writing
 *   `3i` now would conflict with every point already stored.
 *
 * Tags are in key order (InfluxDB's advice for write speed) and left out when empty (an empty tag
 * value is invalid); fields are in key order too, as the `influx` package writes them, and left
 * out when undefined (an empty string is a valid field value and is kept).
 *
 * One deliberate difference from the `influx` package: its escaper first rewrites the first `\'`
 * in a string to `\\'` (an InfluxQL string-literal rule that does not belong in line protocol),
 * so it stored `a\'b` as `a\\'b`. Here every string is stored exactly as sent.
 *
 * Speed: a batch is written straight into one Buffer, the request body, as UTF-8 (what the
 * `influx` package's `req.write(string)` sent: a lone surrogate becomes U+FFFD), character by
 * character, with no intermediate strings per tag or line. Building it from strings (template
 * literals, then join, then encode) cost the API three times as much CPU, most of it in V8
 * flattening the ropes and in the garbage they left.
 */
import type { Envelope } from '../../contracts/envelope.ts'

const TAG_SPECIAL = /[,= ]/
const TAG_SPECIAL_ALL = /[,= ]/g
const STRING_SPECIAL = /["\\]/
const STRING_SPECIAL_ALL = /["\\]/g
const MEASUREMENT_SPECIAL = /[, ]/
const MEASUREMENT_SPECIAL_ALL = /[, ]/g

/** A measurement name: commas and spaces escaped. */
export function escapeMeasurement(name: string): string {
  return MEASUREMENT_SPECIAL.test(name) ? name.replace(MEASUREMENT_SPECIAL_ALL, '\\$&') : name
}

/** A tag key, tag value or field key: commas, equals signs and spaces escaped. */
export function escapeTag(value: string): string {
  return TAG_SPECIAL.test(value) ? value.replace(TAG_SPECIAL_ALL, '\\$&') : value
}

/** A string field value, quoted, with double quotes and backslashes escaped. */
export function quoteString(value: string): string {
  return STRING_SPECIAL.test(value) ? `"${value.replace(STRING_SPECIAL_ALL, '\\$&')}"` : `"${value}"`
}

/** The point timestamp in ns: source ms, then the sequence's low six digits (pointTime in influx-store.ts). */
export function timestampNs(ts: number, seq: number): string {
  return `${ts}${String(seq % 1_000_000).padStart(6, '0')}`
}

const BACKSLASH = 92
const QUOTE = 34
const COMMA = 44
const EQUALS = 61
const SPACE = 32

/** A growing UTF-8 byte buffer with the few writes line protocol needs. */
class LineWriter {
  buf: Buffer
  pos = 0

  constructor(capacity: number) {
    this.buf = Buffer.allocUnsafe(Math.max(capacity, 256))
  }

  /** Room for `n` more bytes. */
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }

  /** A fixed ASCII name or separator (measurement, `,key=`, ` `), written as is. */
  raw(s: string): void {
    this.room(s.length)
    const buf = this.buf
    let pos = this.pos
    for (let i = 0; i < s.length; i++) buf[pos++] = s.charCodeAt(i)
    this.pos = pos
  }

  /** Bytes already encoded (a cached tag set). */
  bytes(b: Uint8Array): void {
    this.room(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }

  byte(b: number): void {
    this.room(1)
    this.buf[this.pos++] = b
  }

  /**
   * `s` as UTF-8, with a backslash before each character that needs one: `,` `=` and space in a
   * tag value (`tag`), `"` and `\` in a string field. At most three bytes per UTF-16 unit,
   * escapes included.
   */
  private text(s: string, tag: boolean): void {
    this.room(s.length * 3)
    const buf = this.buf
    let pos = this.pos
    for (let i = 0; i < s.length; i++) {
      let c = s.charCodeAt(i)
      if (c < 0x80) {
        if (tag ? c === COMMA || c === EQUALS || c === SPACE : c === QUOTE || c === BACKSLASH) buf[pos++] = BACKSLASH
        buf[pos++] = c
      } else if (c < 0x800) {
        buf[pos++] = 0xc0 | (c >> 6)
        buf[pos++] = 0x80 | (c & 0x3f)
      } else if (c >= 0xd800 && c <= 0xdfff) {
        const next = i + 1 < s.length ? s.charCodeAt(i + 1) : 0
        if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
          c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00)
          i++
          buf[pos++] = 0xf0 | (c >> 18)
          buf[pos++] = 0x80 | ((c >> 12) & 0x3f)
          buf[pos++] = 0x80 | ((c >> 6) & 0x3f)
          buf[pos++] = 0x80 | (c & 0x3f)
        } else {
          // A lone surrogate: U+FFFD, as Buffer.from and http's string writes encode it.
          buf[pos++] = 0xef
          buf[pos++] = 0xbf
          buf[pos++] = 0xbd
        }
      } else {
        buf[pos++] = 0xe0 | (c >> 12)
        buf[pos++] = 0x80 | ((c >> 6) & 0x3f)
        buf[pos++] = 0x80 | (c & 0x3f)
      }
    }
    this.pos = pos
  }

  /** `,key=value` for a present, non-empty tag; nothing otherwise. `key` starts with the comma. */
  tag(key: string, value: string | undefined): void {
    if (value === undefined || value === '') return
    this.raw(key)
    this.text(value, true)
  }

  /** A string field value: quoted, escaped. */
  quoted(value: string): void {
    this.byte(QUOTE)
    this.text(value, false)
    this.byte(QUOTE)
  }

  /**
   * A number exactly as `String(value)` writes it. Most readings have at most two decimals (a
   * sensor's resolution), and for those the digits are written here: `String()` of a double costs
   * ~120 ns in V8 (shortest round-trip digits, then a string), this ~20 ns. It is the same text:
   * when `round(|v|·100)/100` is `|v|` and |v| < 10¹³ (so an ulp of v is below 0.01), the
   * two-decimal number is the only decimal of that many digits or fewer that reads back as v, so
   * it is the shortest, which is what `String()` writes. Anything else goes to `String()`.
   */
  number(value: number): void {
    const abs = value < 0 ? -value : value
    const cents = Math.round(abs * 100)
    if (!(abs < 1e13 && cents / 100 === abs)) {
      this.raw(`${value}`)
      return
    }
    // -0 is written `0`, as String(-0) is.
    if (value < 0) this.byte(45)
    const whole = Math.floor(cents / 100)
    const frac = cents - whole * 100
    this.raw(`${whole}`)
    if (frac === 0) return
    const tenths = (frac / 10) | 0
    const hundredths = frac - tenths * 10
    this.room(3)
    this.buf[this.pos++] = 46
    this.buf[this.pos++] = 48 + tenths
    if (hundredths !== 0) this.buf[this.pos++] = 48 + hundredths
  }

  /** ` <ts><seq mod 10⁶, six digits>`, as timestampNs writes it. */
  time(ts: number, seq: number): void {
    this.byte(SPACE)
    if (!(Number.isSafeInteger(ts) && ts >= 1_000_000 && Number.isSafeInteger(seq) && seq >= 0)) {
      this.raw(timestampNs(ts, seq))
      return
    }
    // The ms as two integers V8 formats fast (no heap number), then the six digits of seq.
    const high = Math.floor(ts / 1_000_000)
    this.raw(`${high}`)
    this.digits6(ts - high * 1_000_000)
    this.digits6(seq % 1_000_000)
  }

  private digits6(n: number): void {
    this.room(6)
    const buf = this.buf
    for (let i = this.pos + 5; i >= this.pos; i--) {
      const q = (n / 10) | 0
      buf[i] = 48 + n - q * 10
      n = q
    }
    this.pos += 6
  }
}

/**
 * The field set of one point: the first field written follows a space (between tags and fields),
 * every later one a comma; undefined values are left out.
 */
class Fields {
  private first = true
  constructor(private readonly w: LineWriter) {}

  private key(key: string): void {
    this.w.byte(this.first ? SPACE : COMMA)
    this.first = false
    this.w.raw(key)
    this.w.byte(EQUALS)
  }

  str(key: string, value: string | undefined): void {
    if (value === undefined) return
    this.key(key)
    this.w.quoted(value)
  }

  num(key: string, value: number | undefined): void {
    if (value === undefined) return
    this.key(key)
    this.w.number(value)
  }
}

/**
 * The measurement and tag set of a reading or minute aggregate, by device: a device sends the
 * same series over and over, so its encoded tag set is copied instead of written character by
 * character. An entry is used only when every tag value is the same string; the cache is
 * emptied when it holds more series than a large center has.
 */
interface SeriesEntry {
  measurement: string
  enterprise: string | undefined
  gateway: string
  grid: string | undefined
  office: string
  quantity: string
  bytes: Uint8Array
}
const seriesByDevice = new Map<string, SeriesEntry[]>()
let seriesCached = 0
const MAX_SERIES_CACHED = 200_000

function quantitySeries(w: LineWriter, measurement: string, e: Envelope, quantity: string): void {
  const list = seriesByDevice.get(e.device)
  if (list !== undefined) {
    for (let i = 0; i < list.length; i++) {
      const c = list[i]
      if (c.quantity === quantity && c.measurement === measurement && c.gateway === e.gateway && c.office === e.office && c.enterprise === e.enterprise && c.grid === e.grid) {
        w.bytes(c.bytes)
        return
      }
    }
  }
  const start = w.pos
  w.raw(measurement)
  w.tag(',device=', e.device)
  w.tag(',enterprise=', e.enterprise)
  w.tag(',gateway=', e.gateway)
  w.tag(',grid=', e.grid)
  w.tag(',office=', e.office)
  w.tag(',quantity=', quantity)
  if (seriesCached >= MAX_SERIES_CACHED) {
    seriesByDevice.clear()
    seriesCached = 0
  }
  // A copy: a slice would be a view that keeps the whole request body alive as long as the cache.
  const entry = { measurement, enterprise: e.enterprise, gateway: e.gateway, grid: e.grid, office: e.office, quantity, bytes: Buffer.from(w.buf.subarray(start, w.pos)) }
  if (list !== undefined) list.push(entry)
  else seriesByDevice.set(e.device, [entry])
  seriesCached++
}

/** Writes one envelope's line (no newline). Tag keys and field keys of each kind in sorted order. */
function writeEnvelope(w: LineWriter, e: Envelope): void {
  switch (e.kind) {
    case 'reading': {
      const p = e.payload
      quantitySeries(w, 'reading', e, p.quantity)
      const f = new Fields(w)
      f.str('id', e.id)
      f.str('unit', p.unit)
      f.num('value', p.value)
      break
    }
    case 'scan': {
      const p = e.payload
      w.raw('scan')
      w.tag(',checkpoint=', p.checkpoint)
      w.tag(',device=', e.device)
      w.tag(',gateway=', e.gateway)
      w.tag(',grid=', e.grid)
      w.tag(',method=', p.method)
      w.tag(',office=', e.office)
      const f = new Fields(w)
      f.str('id', e.id)
      f.num('lat', p.location?.lat)
      f.num('lon', p.location?.lon)
      f.str('staff', p.staff)
      f.str('tag', p.tag)
      break
    }
    case 'camera': {
      const p = e.payload
      w.raw('camera_event')
      w.tag(',device=', e.device)
      w.tag(',event=', p.event)
      w.tag(',gateway=', e.gateway)
      w.tag(',grid=', e.grid)
      w.tag(',office=', e.office)
      const f = new Fields(w)
      f.num('channel', p.channel)
      f.num('confidence', p.confidence)
      f.str('id', e.id)
      f.str('region', p.region)
      f.str('snapshot', p.snapshot)
      break
    }
    case 'report': {
      const p = e.payload
      w.raw('report')
      w.tag(',category=', p.category)
      w.tag(',device=', e.device)
      w.tag(',gateway=', e.gateway)
      w.tag(',grid=', e.grid)
      w.tag(',office=', e.office)
      w.tag(',type=', p.type)
      const f = new Fields(w)
      f.str('id', e.id)
      f.num('lat', p.location?.lat)
      f.num('lon', p.location?.lon)
      f.str('photo', p.photo)
      f.str('staff', p.staff)
      f.str('text', p.text)
      break
    }
    case 'status': {
      const p = e.payload
      w.raw('device_status')
      w.tag(',device=', e.device)
      w.tag(',gateway=', e.gateway)
      w.tag(',grid=', e.grid)
      w.tag(',office=', e.office)
      w.tag(',state=', p.state)
      const f = new Fields(w)
      f.str('id', e.id)
      f.str('reason', p.reason)
      break
    }
    case 'alert': {
      const p = e.payload
      w.raw('alert_event')
      w.tag(',device=', e.device)
      w.tag(',enterprise=', e.enterprise)
      w.tag(',gateway=', e.gateway)
      w.tag(',grid=', e.grid)
      w.tag(',level=', p.level)
      w.tag(',office=', e.office)
      w.tag(',severity=', p.severity)
      w.tag(',state=', p.state)
      w.tag(',type=', p.type)
      const f = new Fields(w)
      f.str('alert_id', p.alertId)
      f.str('cause', p.cause)
      f.str('id', e.id)
      f.str('message', p.message)
      f.num('peak', p.peak)
      f.str('quantity', p.quantity)
      f.num('suppressed', p.suppressed)
      f.num('threshold', p.threshold)
      f.str('unit', p.unit)
      f.num('value', p.value)
      break
    }
    case 'aggregate': {
      const p = e.payload
      quantitySeries(w, 'reading_1m', e, p.quantity)
      const f = new Fields(w)
      f.num('count', p.count)
      f.str('id', e.id)
      f.num('max', p.max)
      f.num('mean', p.mean)
      f.num('min', p.min)
      f.num('to_ms', p.to)
      f.str('unit', p.unit)
      break
    }
    case 'incident': {
      const p = e.payload
      w.raw('incident')
      w.tag(',category=', p.category)
      w.tag(',device=', e.device)
      w.tag(',gateway=', e.gateway)
      w.tag(',grid=', e.grid)
      w.tag(',level=', p.level)
      w.tag(',office=', e.office)
      const f = new Fields(w)
      f.str('cause', p.cause)
      f.str('description', p.description)
      f.str('id', e.id)
      f.str('incident_id', p.incidentId)
      f.num('lat', p.location?.lat)
      f.num('lon', p.location?.lon)
      f.str('photo', p.photo)
      f.str('reporter', p.reporter)
      break
    }
    case 'gap': {
      const p = e.payload
      w.raw('data_gap')
      w.tag(',class=', p.class)
      w.tag(',device=', e.device)
      w.tag(',gateway=', e.gateway)
      w.tag(',grid=', e.grid)
      w.tag(',office=', e.office)
      w.tag(',reason=', p.reason)
      const f = new Fields(w)
      f.num('count', p.count)
      f.num('from_ms', p.from)
      f.str('id', e.id)
      f.str('kinds', p.kinds.join(','))
      f.num('to_ms', p.to)
      break
    }
  }
  w.time(e.ts, e.seq)
}

/** The line of one envelope, without a trailing newline. */
export function envelopeLine(e: Envelope): string {
  const w = new LineWriter(512)
  writeEnvelope(w, e)
  return w.buf.toString('utf8', 0, w.pos)
}

/** One request body: up to `linesPerBody` lines, joined by newlines. */
export interface LineBody {
  /** UTF-8 line protocol. */
  body: Buffer
  /** Index in the batch of the envelope of the first line. */
  first: number
  /** The body's lines as strings, made only when asked (to name the lines InfluxDB refused). */
  lines: () => string[]
}

/**
 * The envelopes as line-protocol bodies of at most `linesPerBody` lines each (InfluxDB's advice
 * is batches of about 5,000 points).
 */
export function envelopeBodies(envelopes: readonly Envelope[], linesPerBody = 5000): LineBody[] {
  const out: LineBody[] = []
  for (let first = 0; first < envelopes.length; first += linesPerBody) {
    const end = Math.min(first + linesPerBody, envelopes.length)
    // ~150 bytes a reading; the writer grows if the text fields are long.
    const w = new LineWriter((end - first) * 192)
    const starts = new Array<number>(end - first + 1)
    for (let i = first; i < end; i++) {
      if (i > first) w.byte(10)
      starts[i - first] = w.pos
      writeEnvelope(w, envelopes[i])
    }
    starts[end - first] = w.pos + 1
    const body = w.buf.subarray(0, w.pos)
    const lines = () => Array.from({ length: end - first }, (_, i) => body.toString('utf8', starts[i], starts[i + 1] - 1))
    out.push({ body, first, lines })
  }
  return out
}
