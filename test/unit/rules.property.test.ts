/**
 * Property-based tests (fast-check) of the alarm and tour state machines: for any sequence of
 * readings or scans and any restart point, the invariants hold.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { clearLevel } from '../../gateway/rules/threshold.ts'
import { LOCAL_0800, RulesHarness, minutes } from '../helpers/rules-harness.ts'

const RUNS = Number(process.env.FC_RUNS ?? 300)
/** Only the machines under test: no stale, stuck or rate checks, no double-scan memory. */
const isolated = (debounceSamples: number) => ({
  thresholds: { gas: { staleMinutes: 0, stuckMinutes: 0, ratePerMinute: 0, debounceSamples } },
  patrol: { doubleScanSeconds: 0 },
  storm: { maxAlerts: 1_000_000 },
})

/** Feeds readings one minute apart, restarting (a new engine from persisted state) before index `restartAt`. */
function runReadings(values: number[], debounce: number, restartAt?: number) {
  const h = new RulesHarness(isolated(debounce))
  values.forEach((v, i) => {
    if (i === restartAt) h.restart()
    h.feed(h.reading('gas-002', LOCAL_0800 + minutes(i), v))
  })
  return h
}

// Whole numbers around the levels most of the time (fast-check's doubles favour extremes), and
// any double now and then.
const gas = fc.oneof({ arbitrary: fc.integer({ min: 0, max: 70 }), weight: 4 }, { arbitrary: fc.double({ min: 0, max: 100, noNaN: true }), weight: 1 })
const debounce = fc.integer({ min: 1, max: 3 })

describe('alarm state machine', () => {
  it('every raise has exactly one matching clear once the gas falls back', () => {
    fc.assert(
      fc.property(fc.array(gas, { maxLength: 60 }), debounce, (values, d) => {
        const h = runReadings([...values, 0], d)
        const byId = new Map<string, string[]>()
        for (const a of h.alerts) byId.set(a.payload.alertId, [...(byId.get(a.payload.alertId) ?? []), a.payload.state])
        for (const states of byId.values()) {
          expect(states[0]).toBe('raised')
          expect(states.filter((s) => s === 'raised')).toHaveLength(1)
          expect(states.filter((s) => s === 'cleared')).toHaveLength(1)
          expect(states[states.length - 1]).toBe('cleared')
        }
      }),
      { numRuns: RUNS },
    )
  })

  it('no alert is raised for noise inside the band between the clear level and the low alarm', () => {
    const h0 = new RulesHarness()
    const t = h0.engine.office.threshold('gas-002', 'gas')!
    const inBand = fc.double({ min: clearLevel(t), max: t.low, maxExcluded: true, noNaN: true })
    fc.assert(
      fc.property(fc.array(inBand, { maxLength: 80 }), debounce, (values, d) => {
        expect(runReadings(values, d).alerts).toEqual([])
      }),
      { numRuns: RUNS },
    )
  })

  it('state after a restart equals state without one, and so do the alerts', () => {
    fc.assert(
      fc.property(
        fc.array(gas, { minLength: 1, maxLength: 60 }).chain((values) => fc.tuple(fc.constant(values), fc.integer({ min: 0, max: values.length - 1 }), debounce)),
        ([values, restartAt, d]) => {
          const straight = runReadings(values, d)
          const restarted = runReadings(values, d, restartAt)
          expect(restarted.alerts).toEqual(straight.alerts)
          expect(restarted.state).toEqual(straight.state)
        },
      ),
      { numRuns: RUNS },
    )
  })
})

const route = ['cp-01', 'cp-02', 'cp-03', 'cp-04']
/** A scan: which checkpoint, when (minutes from 08:00; the tour runs 08:00-09:00 with 15 min grace), by whom. */
const scan = fc.record({
  checkpoint: fc.constantFrom(...route),
  at: fc.integer({ min: -30, max: 100 }),
  staff: fc.constantFrom('staff-zhang-wei', 'staff-zhang-wei', 'staff-li-na'),
})

/** Interleaves ticks (every 5 minutes) and scans in time order; restarts before step `restartAt`. */
function runTour(scans: { checkpoint: string; at: number; staff: string }[], restartAt?: number) {
  const h = new RulesHarness(isolated(1))
  const events = [
    ...scans.map((s, i) => ({ at: s.at, order: 1, i })),
    ...Array.from({ length: 30 }, (_, k) => ({ at: -40 + k * 5, order: 0, i: -1 })),
  ].sort((a, b) => a.at - b.at || a.order - b.order || a.i - b.i)
  events.forEach((e, step) => {
    if (step === restartAt) h.restart()
    const ts = LOCAL_0800 + minutes(e.at)
    if (e.i < 0) h.tick(ts)
    else h.feed(h.scan(ts, scans[e.i].checkpoint, 'TAG', scans[e.i].staff))
  })
  return h
}

describe('tour state machine', () => {
  it('state after a restart equals state without one, and so do the alerts', () => {
    fc.assert(
      fc.property(
        fc.array(scan, { maxLength: 12 }).chain((scans) => fc.tuple(fc.constant(scans), fc.integer({ min: 0, max: scans.length + 29 }))),
        ([scans, restartAt]) => {
          const straight = runTour(scans)
          const restarted = runTour(scans, restartAt)
          expect(restarted.alerts).toEqual(straight.alerts)
          expect(restarted.state).toEqual(straight.state)
        },
      ),
      { numRuns: RUNS },
    )
  })

  it('every tour ends in one final state, and its alerts agree with it', () => {
    fc.assert(
      fc.property(fc.array(scan, { maxLength: 12 }), (scans) => {
        const h = runTour(scans)
        const status = h.engine.tours.status('r-laojie-round', LOCAL_0800)
        expect(['completed', 'incomplete', 'missed']).toContain(status)
        const open = (type: string) => {
          const byId = new Map<string, string>()
          for (const a of h.alerts.filter((x) => x.payload.type === type)) byId.set(a.payload.alertId, a.payload.state)
          return [...byId.values()].filter((s) => s !== 'cleared').length
        }
        // A completed tour leaves nothing open; a missed one exactly its not-started alert; an
        // incomplete one exactly its missed-checkpoint alert.
        expect(open('patrol.tour_not_started')).toBe(status === 'missed' ? 1 : 0)
        expect(open('patrol.checkpoint_missed')).toBe(status === 'incomplete' ? 1 : 0)
        // One-shot alerts come at most once per tour.
        for (const type of ['patrol.out_of_order', 'patrol.tour_late']) expect(h.alerts.filter((a) => a.payload.type === type).length).toBeLessThanOrEqual(1)
        const inWindow = new Set(scans.filter((s) => s.at >= -15 && s.at <= 75).map((s) => s.checkpoint))
        expect(status === 'completed').toBe(inWindow.size === route.length)
      }),
      { numRuns: RUNS },
    )
  })
})
