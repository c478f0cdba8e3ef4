import { describe, expect, it } from 'vitest'
import { foldAlerts } from '../../cloud-api/alerts/fold.ts'
import { pointTime, sourceMs, toPoint } from '../../cloud-api/store/influx-store.ts'
import { alertEventRow, type AlertEventRow } from '../../cloud-api/store/store.ts'
import { retryAfterMs } from '../../gateway/uplink/forwarder.ts'
import type { AlertEnvelope } from '../../contracts/envelope.ts'
import { EnvelopeFactory } from '../helpers/envelopes.ts'

const T = Date.UTC(2026, 10, 26, 8)
const f = new EnvelopeFactory()
const row = (e: ReturnType<EnvelopeFactory['alert']>) => alertEventRow(e as AlertEnvelope)

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

describe('alert fold', () => {
  it('folds raised, updated and cleared into one alert with its highest severity and peak', () => {
    const raised = f.alert('gas-1', T, { alertId: 'a:1', state: 'raised', severity: 'major', message: 'low alarm', peak: 26, value: 26 })
    const updated = f.alert('gas-1', T + 1000, { alertId: 'a:1', state: 'updated', severity: 'critical', message: 'high alarm', peak: 52, value: 52 })
    const cleared = f.alert('gas-1', T + 2000, { alertId: 'a:1', state: 'cleared', severity: 'critical', message: 'back to normal', peak: 58, value: 3 })
    const other = f.alert('cam-1', T + 500, { alertId: 'b:1', state: 'raised', severity: 'minor', type: 'camera.intrusion' })
    const alerts = foldAlerts([raised, other, updated, cleared].map(row))
    expect(alerts.map((a) => [a.alertId, a.state, a.severity, a.peak, a.message, a.events])).toEqual([
      ['b:1', 'active', 'minor', undefined, 'test alert', 1],
      ['a:1', 'cleared', 'critical', 58, 'high alarm', 3],
    ])
    expect(alerts[1].clearedAt).toBe(new Date(T + 2000).toISOString())
    expect(foldAlerts([raised, other, updated, cleared].map(row), { state: 'active' }).map((a) => a.alertId)).toEqual(['b:1'])
  })

  it('an alert whose raise fell outside the window still shows, from its first event', () => {
    const rows: AlertEventRow[] = [row(f.alert('gas-1', T, { alertId: 'old:1', state: 'cleared' }))]
    expect(foldAlerts(rows)).toMatchObject([{ alertId: 'old:1', state: 'cleared' }])
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
