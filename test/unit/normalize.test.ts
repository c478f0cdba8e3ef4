import { describe, expect, it } from 'vitest'
import { Normalizer, MAX_PAYLOAD_BYTES } from '../../gateway/normalize/normalize.ts'
import { testOfficeConfig } from '../helpers/office.ts'

const config = testOfficeConfig()
const n = new Normalizer(config)
const NOW = Date.UTC(2026, 10, 26, 9, 0, 0)
const json = (v: unknown) => Buffer.from(JSON.stringify(v))

describe('Normalizer', () => {
  it('turns a reading into an envelope draft with the office, enterprise and configured unit', () => {
    const r = n.normalize('gas-001', 'reading', json({ ts: NOW - 1000, quantity: 'gas', value: 12.5 }), NOW)
    expect(r).toEqual({
      ok: true,
      draft: {
        gateway: 'gw-tangquan-01',
        office: 'tangquan',
        device: 'gas-001',
        enterprise: 'ent-quanyuan-chem',
        grid: 'g-quanyuan-1',
        ts: NOW - 1000,
        kind: 'reading',
        payload: { quantity: 'gas', value: 12.5, unit: '%LEL' },
      },
    })
  })

  it('keeps yesterday\'s scan time (a wand upload) and resolves the tag to its checkpoint, case-insensitively', () => {
    const yesterday = NOW - 86_400_000
    const r = n.normalize('phone-001', 'scan', json({ ts: new Date(yesterday).toISOString(), tag: '04a1b2c3d4e5f6', staff: 's1' }), NOW)
    expect(r.ok && r.draft).toMatchObject({ ts: yesterday, payload: { tag: '04a1b2c3d4e5f6', checkpoint: 'cp-01', staff: 's1', method: 'nfc' } })
  })

  it('keeps where a phone read the tag, and refuses a location off the globe', () => {
    const r = n.normalize('phone-001', 'scan', json({ tag: '04A1B2C3D4E5F6', staff: 's1', location: { lat: 32.0617, lon: 118.7778 } }), NOW)
    expect(r.ok && r.draft.payload).toMatchObject({ location: { lat: 32.0617, lon: 118.7778 } })
    const off = n.normalize('phone-001', 'scan', json({ tag: '04A1B2C3D4E5F6', location: { lat: 132, lon: 118.7778 } }), NOW)
    expect(off.ok).toBe(false)
    expect(!off.ok && off.rejection.problems?.[0]?.path).toBe('/location/lat')
  })

  it('stamps the receive time when the device has no clock, and replaces an implausible one', () => {
    expect(n.normalize('gas-001', 'reading', json({ quantity: 'gas', value: 1 }), NOW)).toMatchObject({ ok: true, draft: { ts: NOW } })
    expect(n.normalize('gas-001', 'reading', json({ ts: 0, quantity: 'gas', value: 1 }), NOW)).toMatchObject({ draft: { ts: NOW }, timeReplaced: 'too_old' })
    expect(n.normalize('gas-001', 'reading', json({ ts: NOW + 3_600_000, quantity: 'gas', value: 1 }), NOW)).toMatchObject({ draft: { ts: NOW }, timeReplaced: 'ahead' })
  })

  it.each([
    ['not JSON', Buffer.from('{"quantity":'), 'GW_PAYLOAD_NOT_JSON'],
    ['wrong type', json({ quantity: 'gas', value: '12' }), 'GW_PAYLOAD_INVALID'],
    ['unknown field', json({ quantity: 'gas', value: 1, hack: true }), 'GW_PAYLOAD_INVALID'],
    ['too large', Buffer.alloc(MAX_PAYLOAD_BYTES + 1, 32), 'GW_PAYLOAD_TOO_LARGE'],
    ['a JSON array', json([1, 2]), 'GW_PAYLOAD_INVALID'],
    ['__proto__ payload', Buffer.from('{"__proto__":{"polluted":1},"quantity":"gas","value":1}'), 'GW_PAYLOAD_INVALID'],
  ])('rejects %s with a coded reason', (_name, raw, code) => {
    const r = n.normalize('gas-001', 'reading', raw, NOW)
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.rejection.code).toBe(code)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('says where an invalid payload is wrong', () => {
    const r = n.normalize('cam-001', 'camera', json({ event: 'intrusion', confidence: 1.7 }), NOW)
    expect(r.ok ? [] : r.rejection.problems).toEqual([{ path: '/confidence', message: expect.stringContaining('<= 1') }])
  })

  it('rejects a device the office does not know', () => {
    expect(n.normalize('gas-999', 'reading', json({ quantity: 'gas', value: 1 }), NOW)).toMatchObject({ ok: false, rejection: { code: 'GW_DEVICE_UNKNOWN' } })
  })
})
