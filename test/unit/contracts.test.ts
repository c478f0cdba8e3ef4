import { describe, expect, it } from 'vitest'
import { envelopeProblems, idProblems } from '../../contracts/validate.ts'
import { parseDeviceTopic } from '../../contracts/topics.ts'
import { EnvelopeFactory } from '../helpers/envelopes.ts'

const f = new EnvelopeFactory()
const T = Date.UTC(2026, 10, 26)

describe('envelope validation', () => {
  it('accepts every kind the factory builds', () => {
    for (const e of [f.reading('d', T, 1), f.scan('d', T, 'AB'), f.camera('d', T), f.report('d', T, 'x'), f.status('d', T, 'online'), f.alert('d', T, { alertId: 'g:1', state: 'raised' })]) {
      expect(envelopeProblems(e)).toEqual([])
    }
  })

  it('names the path of a bad payload field', () => {
    const e = { ...f.reading('d', T, 1), payload: { quantity: 'gas', value: 'high', unit: '%LEL' } }
    expect(envelopeProblems(e, '/envelopes/3')).toEqual([{ path: '/envelopes/3/payload/value', message: expect.stringContaining('number') }])
  })

  it('names unknown fields', () => {
    const e = { ...f.status('d', T, 'online'), extra: 1 }
    expect(envelopeProblems(e)).toEqual([{ path: '', message: 'unknown field(s): extra' }])
  })

  it('refuses a wall-clock-looking or out-of-range source time', () => {
    expect(envelopeProblems({ ...f.reading('d', T, 1), ts: 12 })[0]?.path).toBe('/ts')
    expect(envelopeProblems({ ...f.reading('d', T, 1), ts: 1.5e12 + 0.5 })[0]?.path).toBe('/ts')
  })

  it('requires the id to be gateway:seq', () => {
    const e = f.reading('d', T, 1)
    expect(idProblems(e)).toEqual([])
    expect(idProblems({ ...e, id: `${e.gateway}:${e.seq + 1}` })).toEqual([{ path: '/id', message: expect.stringContaining('gateway:seq') }])
  })
})

describe('device topics', () => {
  it('parses dev/{deviceId}/{kind}', () => {
    expect(parseDeviceTopic('dev/gas-001/reading')).toEqual({ deviceId: 'gas-001', kind: 'reading' })
  })

  it.each(['dev/gas-001/alert', 'dev/gas-001/reading/extra', 'cmd/gas-001/reading', 'dev//reading', 'dev/__proto__x/reading/', 'dev/a b/reading'])(
    'refuses %s',
    (topic) => {
      expect(parseDeviceTopic(topic)).toBeUndefined()
    },
  )
})
