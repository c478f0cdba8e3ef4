import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Envelope } from '../../contracts/envelope.ts'
import { envelopeProblems } from '../../contracts/validate.ts'
import { envelopeJson } from '../../gateway/outbox/serialize.ts'

const ident = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,20}$/)

describe('envelope JSON', () => {
  it('writes a reading that parses back to the same envelope as JSON.stringify would', () => {
    fc.assert(
      fc.property(
        fc.record({
          gateway: ident,
          office: ident,
          device: ident,
          enterprise: fc.option(ident, { nil: undefined }),
          grid: fc.option(ident, { nil: undefined }),
          seq: fc.integer({ min: 1, max: 2 ** 40 }),
          ts: fc.integer({ min: 946_684_800_000, max: 4_102_444_800_000 }),
          quantity: ident,
          value: fc.double({ noNaN: true, noDefaultInfinity: true }),
          unit: fc.string({ maxLength: 16 }),
        }),
        (r) => {
          const e = {
            id: `${r.gateway}:${r.seq}`,
            seq: r.seq,
            gateway: r.gateway,
            office: r.office,
            device: r.device,
            ...(r.enterprise !== undefined ? { enterprise: r.enterprise } : {}),
            ...(r.grid !== undefined ? { grid: r.grid } : {}),
            ts: r.ts,
            kind: 'reading',
            payload: { quantity: r.quantity, value: r.value, unit: r.unit },
          } as Envelope
          const parsed = JSON.parse(envelopeJson(e)) as Envelope
          expect(parsed).toEqual(JSON.parse(JSON.stringify(e)))
          expect(envelopeProblems(parsed)).toEqual([])
        },
      ),
      { numRuns: 2000 },
    )
  })

  it('writes a non-finite value as JSON.stringify does, so the body stays valid JSON', () => {
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const e = {
        id: 'gw-1:1', seq: 1, gateway: 'gw-1', office: 'o-1', device: 'd-1', ts: 1_700_000_000_000,
        kind: 'reading', payload: { quantity: 'gas', value, unit: '%LEL' },
      } as Envelope
      expect(envelopeJson(e)).toBe(JSON.stringify(e))
      expect((JSON.parse(envelopeJson(e)) as { payload: { value: unknown } }).payload.value).toBeNull()
    }
  })
})
