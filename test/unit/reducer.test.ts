/** The telemetry reducer: minute aggregates, across a config reload and a move between owners. */
import { describe, expect, it } from 'vitest'
import type { AggregateEnvelope, EnvelopeDraft, ReadingEnvelope } from '../../contracts/envelope.ts'
import { Reducer } from '../../gateway/reduce/reducer.ts'
import { EnvelopeFactory } from '../helpers/envelopes.ts'

const settings = { deadband: { gas: 0.5 }, maxIntervalSeconds: 600, aggregates: true, rawRetentionDays: 7 }
let n = 0
const stamp = (draft: EnvelopeDraft) => ({ ...draft, id: `gw:${++n}`, seq: n })
const minute = Date.UTC(2026, 10, 27, 9, 0)
const after = minute + 65_001
const factory = new EnvelopeFactory()
const reading = (value: number, i: number, enterprise?: string, unit = '%LEL') => factory.reading('gas-002', minute + i, value, 'gas', unit, enterprise) as ReadingEnvelope
const summary = (a: AggregateEnvelope) => ({ enterprise: a.enterprise, unit: a.payload.unit, count: a.payload.count, min: a.payload.min, max: a.payload.max })

describe('reducer', () => {
  it('a reducer that takes over closes the minutes the old one had open, with every reading', () => {
    const old = new Reducer(settings, stamp)
    old.add(reading(1.0, 0))
    old.add(reading(1.1, 1))
    const next = new Reducer(settings, stamp)
    next.takeOver(old)
    next.add(reading(1.2, 2))
    expect(next.flush(after).map(summary)).toEqual([{ enterprise: undefined, unit: '%LEL', count: 3, min: 1.0, max: 1.2 }])
    expect(old.flush(after)).toEqual([])
  })

  it('takes over what was last forwarded, so a reload does not forward every sensor again', () => {
    const old = new Reducer(settings, stamp)
    expect(old.forward(reading(1.0, 0), false)).toBe(true)
    const next = new Reducer(settings, stamp)
    next.takeOver(old)
    expect(next.forward(reading(1.1, 1), false)).toBe(false)
    expect(next.forward(reading(1.6, 2), false)).toBe(true)
  })

  it("forwards a sensor's first reading under a new owner, however little it moved", () => {
    const r = new Reducer(settings, stamp)
    expect(r.forward(reading(1.0, 0, 'ent-a'), false)).toBe(true)
    expect(r.forward(reading(1.1, 1, 'ent-a'), false)).toBe(false)
    expect(r.forward(reading(1.1, 2, 'ent-b'), false)).toBe(true)
    expect(r.forward(reading(1.2, 3, 'ent-b'), false)).toBe(false)
    expect(r.forward(reading(1.2, 4), false)).toBe(true)
  })

  it('a sensor that moves to another enterprise within a minute gets one aggregate per owner', () => {
    const r = new Reducer(settings, stamp)
    r.add(reading(1.0, 0, 'ent-a'))
    r.add(reading(1.1, 1, 'ent-a'))
    r.add(reading(9.0, 2, 'ent-b'))
    const out = r.flush(after).map(summary)
    expect(out).toHaveLength(2)
    expect(out).toEqual(
      expect.arrayContaining([
        { enterprise: 'ent-a', unit: '%LEL', count: 2, min: 1.0, max: 1.1 },
        { enterprise: 'ent-b', unit: '%LEL', count: 1, min: 9.0, max: 9.0 },
      ]),
    )
  })

  it('a sensor moved to another grid within a minute gets one aggregate per grid', () => {
    const r = new Reducer(settings, stamp)
    r.add({ ...reading(1.0, 0, 'ent-a'), grid: 'g-1' })
    r.add({ ...reading(2.0, 1, 'ent-a'), grid: 'g-2' })
    expect(r.flush(after).map((a) => [a.grid, a.payload.count])).toEqual(expect.arrayContaining([['g-1', 1], ['g-2', 1]]))
  })

  it('a changed unit within a minute starts its own aggregate and keeps the first', () => {
    const r = new Reducer(settings, stamp)
    r.add(reading(1.0, 0))
    r.add(reading(500, 1, undefined, 'ppm'))
    expect(r.flush(after).map(summary)).toEqual(
      expect.arrayContaining([
        { enterprise: undefined, unit: '%LEL', count: 1, min: 1.0, max: 1.0 },
        { enterprise: undefined, unit: 'ppm', count: 1, min: 500, max: 500 },
      ]),
    )
  })
})
