import { describe, expect, it } from 'vitest'
import { pointTime, sourceMs, toPoint } from '../../cloud-api/store/influx-store.ts'
import { retryAfterMs } from '../../gateway/uplink/forwarder.ts'
import { EnvelopeFactory } from '../helpers/envelopes.ts'

const T = Date.UTC(2026, 10, 26, 8)
const f = new EnvelopeFactory()

describe('InfluxDB point identity', () => {
  it('encodes source ms plus six digits of sequence, and decodes back to the ms', () => {
    expect(pointTime(1764144000123, 42)).toBe('1764144000123000042')
    expect(pointTime(1764144000123, 1_000_042)).toBe('1764144000123000042')
    expect(sourceMs('1764144000123000042')).toBe(1764144000123)
  })

  it('leaves out absent and empty tags, which line protocol cannot carry', () => {
    const p = toPoint(f.reading('gas-1', T, 1, 'gas', '', undefined))
    expect(Object.keys(p.tags ?? {})).toEqual(['device', 'gateway', 'office', 'quantity'])
  })
})

describe('Retry-After', () => {
  it('reads delta-seconds and HTTP dates, capped at five minutes', () => {
    expect(retryAfterMs('7')).toBe(7000)
    expect(retryAfterMs(null)).toBeUndefined()
    expect(retryAfterMs('soon')).toBeUndefined()
    expect(retryAfterMs('86400')).toBe(300_000)
    const inTen = new Date(Date.now() + 10_000).toUTCString()
    expect(retryAfterMs(inTen)).toBeGreaterThan(8000)
  })
})
