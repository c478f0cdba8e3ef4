import { describe, expect, it } from 'vitest'
import type { AlertEnvelope, EnvelopeDraft } from '../../contracts/envelope.ts'
import { RuleEngine } from '../../gateway/rules/engine.ts'
import { fitText } from '../../gateway/rules/rule.ts'
import { envelopeProblems } from '../../contracts/validate.ts'
import type { StateWrite } from '../../gateway/outbox/outbox.ts'
import { testOfficeConfig } from '../helpers/office.ts'

const config = testOfficeConfig()
const T = Date.UTC(2026, 10, 26, 9, 0, 0)

/** An engine with an in-memory stand-in for the outbox's stamp and state table. */
function harness() {
  let seq = 0
  const stamp = (d: EnvelopeDraft) => ({ ...d, id: `gw:${++seq}`, seq })
  const engine = RuleEngine.forOffice(config, stamp)
  const state = new Map<string, string>()
  const alerts: AlertEnvelope[] = []
  const apply = (writes: StateWrite[]) => {
    for (const w of writes) {
      if (w.value === null) state.delete(w.key)
      else state.set(w.key, w.value)
    }
  }
  const feed = (draft: EnvelopeDraft, on = engine) => {
    const out = on.evaluate(stamp(draft))
    alerts.push(...out.alerts)
    apply(out.state)
    return out
  }
  const gas = (value: number, i: number, device = 'gas-002'): EnvelopeDraft & { kind: 'reading' } => ({
    gateway: 'gw',
    office: 'tangquan',
    device,
    ts: T + i * 1000,
    kind: 'reading',
    payload: { quantity: 'gas', value, unit: '%LEL' },
  })
  return { engine, stamp, state, alerts, feed, gas }
}

const summary = (alerts: AlertEnvelope[]) => alerts.map((a) => [a.payload.state, a.payload.severity, a.payload.value])

describe('sensor threshold alarms (gas: low 25, high 50, clear below 20)', () => {
  it('a gas leak: one alert raised at 25, updated once at 50, cleared once below 20, with its peak', () => {
    const h = harness()
    ;[3, 10, 26, 30, 45, 52, 58, 51, 40, 24, 21, 19, 4, 3].forEach((v, i) => h.feed(h.gas(v, i)))
    expect(summary(h.alerts)).toEqual([
      ['raised', 'major', 26],
      ['updated', 'critical', 52],
      ['cleared', 'critical', 19],
    ])
    const ids = new Set(h.alerts.map((a) => a.payload.alertId))
    expect(ids).toEqual(new Set([h.alerts[0].id]))
    expect(h.alerts[2].payload.peak).toBe(58)
    expect(h.alerts[0].ts).toBe(T + 2000)
    expect([...h.state.keys()].filter((k) => k.startsWith('alarm:'))).toEqual([])
  })

  it('a sensor flapping around the level inside the hysteresis band raises one alert and never clears', () => {
    const h = harness()
    ;[24, 26, 24, 25.5, 20.1, 26, 23, 20].forEach((v, i) => h.feed(h.gas(v, i)))
    expect(summary(h.alerts)).toEqual([['raised', 'major', 26]])
  })

  it('readings in another unit than the threshold are not compared', () => {
    const h = harness()
    h.feed({ ...h.gas(900, 0), payload: { quantity: 'gas', value: 900, unit: 'ppm' } })
    expect(h.alerts).toEqual([])
  })

  it('an alarm open when the sensor moves to another enterprise is cleared under its former owner; the new owner gets its own', () => {
    const h = harness()
    h.feed({ ...h.gas(30, 0), enterprise: 'ent-a' })
    h.feed({ ...h.gas(35, 1), enterprise: 'ent-a' })
    // The office config was reloaded: the sensor is ent-b's now, and still over the level.
    h.feed({ ...h.gas(52, 2), enterprise: 'ent-b' })
    expect(h.alerts.map((a) => [a.payload.state, a.enterprise, a.payload.value, a.payload.peak])).toEqual([
      ['raised', 'ent-a', 30, 30],
      ['cleared', 'ent-a', undefined, 35],
      ['raised', 'ent-b', 52, 52],
    ])
    expect(h.alerts[2].payload.alertId).not.toBe(h.alerts[0].payload.alertId)
    for (const a of h.alerts) expect(envelopeProblems(a)).toEqual([])
  })

  it('an alarm raised for a sensor of no enterprise is cleared with none, not under the enterprise it moved to', () => {
    const h = harness()
    // gas-001 belongs to an enterprise in the test office: the clear must not take its frame.
    h.feed({ ...h.gas(30, 0, 'gas-001'), enterprise: undefined, grid: 'grid-x' })
    h.feed({ ...h.gas(30, 1, 'gas-001'), enterprise: 'ent-b' })
    const cleared = h.alerts.find((a) => a.payload.state === 'cleared')!
    expect(cleared.enterprise).toBeUndefined()
    expect(cleared.grid).toBe('grid-x')
    expect(envelopeProblems(cleared)).toEqual([])
  })

  it('each device has its own alarm', () => {
    const h = harness()
    h.feed(h.gas(30, 0, 'gas-001'))
    h.feed(h.gas(30, 0, 'gas-002'))
    expect(new Set(h.alerts.map((a) => a.device))).toEqual(new Set(['gas-001', 'gas-002']))
  })

  it('applies enterprise overrides: the chemical plant alarms at 20 and 40 %LEL', () => {
    const h = harness()
    ;[19, 21, 41].forEach((v, i) => h.feed(h.gas(v, i, 'gas-001')))
    expect(summary(h.alerts)).toEqual([
      ['raised', 'major', 21],
      ['updated', 'critical', 41],
    ])
  })

  it('after a restart from persisted state, an active alarm is neither raised again nor forgotten', () => {
    const h = harness()
    h.feed(h.gas(30, 0))
    const resumed = RuleEngine.forOffice(config, h.stamp)
    resumed.restore(h.state)
    h.feed(h.gas(35, 1), resumed)
    h.feed(h.gas(10, 2), resumed)
    expect(summary(h.alerts)).toEqual([
      ['raised', 'major', 30],
      ['cleared', 'major', 10],
    ])
    expect(h.alerts[1].payload.alertId).toBe(h.alerts[0].id)
    expect(h.alerts[1].payload.peak).toBe(35)
  })
})

describe('camera events', () => {
  const cam = (event: string, confidence: number, seconds: number): EnvelopeDraft => ({
    gateway: 'gw',
    office: 'tangquan',
    device: 'cam-001',
    ts: T + seconds * 1000,
    kind: 'camera',
    payload: { event, confidence, region: 'north gate' },
  })

  it('raises once per camera and event type within the cooldown, and again after it', () => {
    const h = harness()
    h.feed(cam('intrusion', 0.9, 0))
    const held = h.feed(cam('intrusion', 0.95, 30))
    h.feed(cam('smoke', 0.9, 31))
    h.feed(cam('intrusion', 0.9, 61))
    expect(h.alerts.map((a) => [a.payload.type, a.payload.severity, a.ts])).toEqual([
      ['camera.intrusion', 'major', T],
      ['camera.smoke', 'critical', T + 31_000],
      ['camera.intrusion', 'major', T + 61_000],
    ])
    expect(held.suppressed).toEqual(['camera.cooldown'])
  })

  it('records but does not alert on low-confidence detections', () => {
    const h = harness()
    const out = h.feed(cam('intrusion', 0.3, 0))
    expect(h.alerts).toEqual([])
    expect(out.suppressed).toEqual(['camera.confidence'])
  })
})

describe('patrol', () => {
  const base = { gateway: 'gw', office: 'tangquan', device: 'phone-001', ts: T } as const

  it('an SOS is a critical alert naming the staff and place', () => {
    const h = harness()
    h.feed({ ...base, kind: 'report', payload: { type: 'sos', staff: 'staff-zhang', text: 'help', location: { lat: 32.1, lon: 118.6 } } })
    expect(h.alerts.map((a) => [a.payload.type, a.payload.severity])).toEqual([['patrol.sos', 'critical']])
    expect(h.alerts[0].payload.message).toContain('staff-zhang')
  })

  it('an SOS with a long text still makes an alert the center accepts: its message is cut to fit, the text travels whole', () => {
    const h = harness()
    const text = '救命，'.repeat(600) + '😀'.repeat(100)
    h.feed({ ...base, kind: 'report', payload: { type: 'sos', staff: 'staff-zhang', text: text.slice(0, 2000) } })
    const alert = { ...h.alerts[0], id: 'gw:1', seq: 1 }
    expect(envelopeProblems(alert)).toEqual([])
    expect(alert.payload.message.length).toBe(512)
    expect(alert.payload.message.endsWith('…')).toBe(true)
    expect(alert.payload.message.startsWith('SOS from staff-zhang: 救命，')).toBe(true)
  })

  it('cuts text at a limit without splitting a surrogate pair', () => {
    expect(fitText('abc', 3)).toBe('abc')
    expect(fitText('abcd', 3)).toBe('ab…')
    // 'a' + 😀 (two units) + 'b': cut to 3 would end inside the pair, so the pair goes whole.
    expect(fitText('a😀b', 3)).toBe('a…')
    expect(fitText('ab😀c', 4)).toBe('ab…')
  })

  it('a scan of an unknown tag is flagged; a known checkpoint is not', () => {
    const h = harness()
    h.feed({ ...base, kind: 'scan', payload: { tag: '04A1B2C3D4E5F6', checkpoint: 'cp-01', method: 'nfc' } })
    h.feed({ ...base, kind: 'scan', payload: { tag: 'DEADBEEF', method: 'nfc' } })
    expect(h.alerts.map((a) => a.payload.type)).toEqual(['patrol.unknown_tag'])
  })

  it('a problem report is forwarded as data without an alert', () => {
    const h = harness()
    h.feed({ ...base, kind: 'report', payload: { type: 'problem', category: 'dumping', text: 'rubbish by the river' } })
    expect(h.alerts).toEqual([])
  })
})
