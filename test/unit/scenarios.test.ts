/**
 * The rules, scenario by scenario: each asserts the exact alerts, no more and no fewer.
 * The demo office's route: cp-01 → cp-02 → cp-03 → cp-04, ordered, daily 08:00 for 60 min,
 * 15 min grace, assigned to staff-zhang-wei (and an evening tour at 20:00).
 */
import { describe, expect, it } from 'vitest'
import { LOCAL_0800, RulesHarness, minutes } from '../helpers/rules-harness.ts'

const t = (m: number) => LOCAL_0800 + minutes(m)
/** Tour scenarios run without the gas detectors, so their stale check is off. */
const patrolOnly = { thresholds: { gas: { staleMinutes: 0 } } }

describe('scenarios', () => {
  it('a gas leak: raised at the low alarm, updated at the high alarm, cleared once, with its peak', () => {
    const h = new RulesHarness()
    ;[3, 12, 26, 31, 44, 52, 58, 47, 33, 22, 19, 4].forEach((v, i) => h.feed(h.reading('gas-002', t(i), v)))
    expect(h.summary()).toEqual([
      ['sensor.threshold', 'raised'],
      ['sensor.threshold', 'updated'],
      ['sensor.threshold', 'cleared'],
    ])
    expect(h.alerts.map((a) => [a.payload.severity, a.payload.value, a.payload.level])).toEqual([
      ['major', 26, 'street'],
      ['critical', 52, 'street'],
      ['critical', 19, 'street'],
    ])
    expect(h.alerts[2].payload.peak).toBe(58)
  })

  it('a sensor flapping inside the hysteresis band (between the clear level and the low alarm): no alerts', () => {
    const h = new RulesHarness()
    ;[21, 24.9, 20.2, 24, 22, 24.99, 20.01, 23].forEach((v, i) => h.feed(h.reading('gas-002', t(i), v)))
    expect(h.alerts).toEqual([])
  })

  it('debounce: three samples in a row at the level before a raise; a dip in between starts again', () => {
    const h = new RulesHarness({ thresholds: { gas: { debounceSamples: 3 } } })
    ;[26, 27, 10, 26, 27, 28, 29].forEach((v, i) => h.feed(h.reading('gas-002', t(i), v)))
    expect(h.alerts.map((a) => [a.payload.state, a.payload.value])).toEqual([['raised', 28]])
  })

  it('a stale sensor: one alert when its readings stop for 10 minutes, cleared when they return', () => {
    const h = new RulesHarness()
    // Noon, local: no patrol tour is due.
    const noon = (m: number) => t(240 + m)
    h.tick(noon(0))
    for (let m = 0; m <= 30; m++) {
      h.feed(h.reading('gas-001', noon(m), 3))
      if (m <= 5) h.feed(h.reading('gas-002', noon(m), 3))
      h.tick(noon(m) + 30_000)
    }
    h.feed(h.reading('gas-002', noon(31), 3))
    expect(h.summary()).toEqual([
      ['sensor.stale', 'raised'],
      ['sensor.stale', 'cleared'],
    ])
    expect(h.alerts.every((a) => a.device === 'gas-002')).toBe(true)
    expect(h.alerts[0].ts).toBe(noon(15) + 30_000)
  })

  it('a stuck sensor: the same value for 30 minutes is one alert, cleared when the value moves', () => {
    const h = new RulesHarness({ thresholds: { gas: { stuckMinutes: 30, staleMinutes: 0 } } })
    for (let m = 0; m <= 40; m++) h.feed(h.reading('gas-002', t(m), 3.1))
    h.feed(h.reading('gas-002', t(41), 3.4))
    expect(h.summary()).toEqual([
      ['sensor.stuck', 'raised'],
      ['sensor.stuck', 'cleared'],
    ])
    expect(h.alerts[0].ts).toBe(t(30))
  })

  it('a rate of change: a jump faster than the limit is one alert, cleared when it calms', () => {
    const h = new RulesHarness({ thresholds: { gas: { ratePerMinute: 10, staleMinutes: 0 } } })
    ;[2, 3, 18, 19, 19.5, 20].forEach((v, i) => h.feed(h.reading('gas-002', t(i), v)))
    expect(h.summary()).toEqual([
      ['sensor.rate_of_change', 'raised'],
      ['sensor.rate_of_change', 'cleared'],
    ])
  })

  it('a sensor fault reported by the device, cleared when it comes back online', () => {
    const h = new RulesHarness()
    const status = (ts: number, state: 'fault' | 'online') => ({ gateway: 'gw-tangquan-01', office: 'tangquan', device: 'gas-002', ts, kind: 'status' as const, payload: { state, reason: 'E03 sensor head' } })
    h.feed(status(t(0), 'fault'))
    h.feed(status(t(1), 'fault'))
    h.feed(status(t(5), 'online'))
    expect(h.summary()).toEqual([
      ['sensor.fault', 'raised'],
      ['sensor.fault', 'cleared'],
    ])
  })

  it('a missed checkpoint: three of four scanned in time, one alert at the end of the grace naming the fourth', () => {
    const h = new RulesHarness(patrolOnly)
    h.tick(t(-60))
    h.feed(h.scan(t(5), 'cp-01'))
    h.feed(h.scan(t(20), 'cp-02'))
    h.feed(h.scan(t(35), 'cp-03'))
    h.tickEveryMinute(t(-59), t(80))
    expect(h.summary()).toEqual([['patrol.checkpoint_missed', 'raised']])
    expect(h.alerts[0].payload.message).toContain('河道桥头')
    expect(h.alerts[0].ts).toBe(t(75))
    expect(h.alerts[0].device).toBe('r-laojie-round')
    expect(h.engine.tours.status('r-laojie-round', t(0))).toBe('incomplete')
  })

  it('a tour never started: one alert at start + grace, updated to missed at end + grace', () => {
    const h = new RulesHarness(patrolOnly)
    h.tickEveryMinute(t(-60), t(90))
    expect(h.summary()).toEqual([
      ['patrol.tour_not_started', 'raised'],
      ['patrol.tour_not_started', 'updated'],
    ])
    expect(h.alerts.map((a) => a.ts)).toEqual([t(15), t(75)])
    expect(h.engine.tours.status('r-laojie-round', t(0))).toBe('missed')
  })

  it('an out-of-order tour: one alert, and the tour still completes', () => {
    const h = new RulesHarness(patrolOnly)
    h.tick(t(-60))
    for (const [m, cp] of [[5, 'cp-01'], [15, 'cp-03'], [25, 'cp-02'], [35, 'cp-04']] as const) h.feed(h.scan(t(m), cp))
    h.tickEveryMinute(t(-59), t(90))
    expect(h.summary()).toEqual([['patrol.out_of_order', 'raised']])
    expect(h.engine.tours.status('r-laojie-round', t(0))).toBe('completed')
  })

  it("a wand upload of yesterday's scans, judged by scan time: the tour counts as walked on time", () => {
    const h = new RulesHarness(patrolOnly)
    const yesterday = (m: number) => t(m) - 86_400_000
    // Yesterday, nobody knew: the wand had the scans.
    h.tickEveryMinute(yesterday(-60), yesterday(90))
    expect(h.summary()).toEqual([
      ['patrol.tour_not_started', 'raised'],
      ['patrol.tour_not_started', 'updated'],
    ])
    // This morning at 07:00 the wand is docked and uploads yesterday's round.
    const uploadedAt = t(-60)
    for (const [m, cp] of [[3, 'cp-01'], [18, 'cp-02'], [30, 'cp-03'], [44, 'cp-04']] as const) {
      h.feed(h.scan(yesterday(m), cp, 'TAG', 'staff-zhang-wei', 'wand'), uploadedAt)
    }
    expect(h.summary()).toEqual([
      ['patrol.tour_not_started', 'raised'],
      ['patrol.tour_not_started', 'updated'],
      ['patrol.tour_not_started', 'cleared'],
    ])
    expect(h.engine.tours.status('r-laojie-round', yesterday(0))).toBe('completed')
    // Nothing about today's tour, which is not due yet.
    expect(h.engine.tours.status('r-laojie-round', t(0))).not.toBe('completed')
  })

  it('a wand upload of a partial round, after the tour was judged missed: judged again once the upload is over', () => {
    const h = new RulesHarness(patrolOnly)
    h.tickEveryMinute(t(-60), t(90))
    const uploadedAt = t(120)
    h.feed(h.scan(t(3), 'cp-01', 'TAG', 'staff-zhang-wei', 'wand'), uploadedAt)
    h.feed(h.scan(t(18), 'cp-02', 'TAG', 'staff-zhang-wei', 'wand'), uploadedAt)
    h.tickEveryMinute(t(121), t(125))
    expect(h.summary()).toEqual([
      ['patrol.tour_not_started', 'raised'],
      ['patrol.tour_not_started', 'updated'],
      ['patrol.tour_not_started', 'cleared'],
      ['patrol.checkpoint_missed', 'raised'],
    ])
    expect(h.engine.tours.status('r-laojie-round', t(0))).toBe('incomplete')
  })

  it('a tour finished after its end is late; a scan by someone not assigned is flagged', () => {
    const h = new RulesHarness(patrolOnly)
    h.tick(t(-60))
    h.feed(h.scan(t(10), 'cp-01'))
    h.feed(h.scan(t(30), 'cp-02', 'TAG', 'staff-li-na'))
    h.feed(h.scan(t(50), 'cp-03'))
    h.feed(h.scan(t(70), 'cp-04'))
    expect(h.summary()).toEqual([
      ['patrol.staff_not_assigned', 'raised'],
      ['patrol.tour_late', 'raised'],
    ])
  })

  it('an SOS: one critical alert at once, for the street office', () => {
    const h = new RulesHarness()
    h.feed({ gateway: 'gw-tangquan-01', office: 'tangquan', device: 'phone-001', ts: t(0), kind: 'report', payload: { type: 'sos', staff: 'staff-zhang-wei', text: 'help' } })
    expect(h.alerts.map((a) => [a.payload.type, a.payload.state, a.payload.severity, a.payload.level])).toEqual([['patrol.sos', 'raised', 'critical', 'street']])
  })

  it('a camera storm of 1,000 events in a minute: 10 alerts, then one storm alert that counts the rest', () => {
    const h = new RulesHarness({ camera: { cooldownSeconds: 0 } })
    for (let i = 0; i < 1000; i++) h.feed(h.camera(t(0) + i * 60))
    h.tickEveryMinute(t(1), t(3))
    const camera = h.alerts.filter((a) => a.payload.type === 'camera.intrusion')
    const storm = h.alerts.filter((a) => a.payload.type === 'storm')
    expect(camera).toHaveLength(10)
    expect(storm.map((a) => [a.payload.state, a.payload.suppressed])).toEqual([
      ['raised', 1],
      ['updated', 990],
      ['cleared', 990],
    ])
    expect(h.alerts).toHaveLength(13)
  })
})

describe('receipts, double scans, camera windows, incidents', () => {
  it('a scan gets a receipt with the next checkpoint; a double scan is rejected and not stored', () => {
    const h = new RulesHarness()
    h.tick(t(-60))
    expect(h.feed(h.scan(t(5), 'cp-01', '04A1B2C3D4E5F6')).receipt).toMatchObject({ status: 'accepted', checkpoint: 'cp-01', next: 'cp-02', remaining: 3 })
    const again = h.feed(h.scan(t(5) + 20_000, 'cp-01', '04A1B2C3D4E5F6'))
    expect(again.drop).toBe('double_scan')
    expect(again.receipt).toMatchObject({ status: 'rejected', reason: 'double scan' })
    expect(h.feed(h.scan(t(6), undefined, 'DEADBEEF')).receipt).toMatchObject({ status: 'rejected', reason: 'unknown tag' })
  })

  it('intrusion counts only outside opening hours', () => {
    const h = new RulesHarness({ camera: { windows: { intrusion: { outside: '07:00-22:00' } } } })
    h.feed(h.camera(t(60))) // 09:00 local: open
    h.feed(h.camera(t(15 * 60))) // 23:00 local: closed
    expect(h.alerts.map((a) => a.ts)).toEqual([t(15 * 60)])
  })

  it('a problem report becomes an incident with its grid, reporter, photo and handling level', () => {
    const h = new RulesHarness()
    h.feed({
      gateway: 'gw-tangquan-01',
      office: 'tangquan',
      device: 'phone-001',
      grid: 'g-laojie-1',
      ts: t(0),
      kind: 'report',
      payload: { type: 'problem', category: 'dumping', text: 'rubbish by the river', staff: 'staff-zhang-wei', photo: 'photos/1.jpg', location: { lat: 32.04, lon: 118.63 } },
    })
    expect(h.alerts).toEqual([])
    expect(h.derived).toEqual([
      expect.objectContaining({
        kind: 'incident',
        grid: 'g-laojie-1',
        payload: expect.objectContaining({ category: 'dumping', description: 'rubbish by the river', reporter: 'staff-zhang-wei', photo: 'photos/1.jpg', level: 'grid' }),
      }),
    ])
  })
})
