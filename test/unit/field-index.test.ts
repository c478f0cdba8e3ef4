import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openCenterDb, type CenterDb } from '../../cloud-api/center/db.ts'
import { FieldIndex } from '../../cloud-api/center/field.ts'
import { EnvelopeFactory } from '../helpers/envelopes.ts'

const T = Date.UTC(2026, 10, 27, 8)
const dirs: string[] = []
const open: { db: CenterDb; field: FieldIndex }[] = []

function center(path: string): FieldIndex {
  const db = openCenterDb(path)
  const field = new FieldIndex(db)
  open.push({ db, field })
  return field
}

afterEach(() => {
  for (const { db, field } of open.splice(0)) {
    field.close()
    db.close()
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe('the field index (devices and gateways the center has heard from)', () => {
  it('keeps same-named devices of two offices apart, follows an owner change, and remembers it all after a restart', () => {
    const dir = mkdtempSync(join(tmpdir(), 'field-'))
    dirs.push(dir)
    const path = join(dir, 'center.db')
    const north = new EnvelopeFactory('gw-north', 'office-north')
    const south = new EnvelopeFactory('gw-south', 'office-south')
    const field = center(path)

    field.noteEnvelopes([north.reading('gas-001', T, 12.5, 'gas', '%LEL', 'ent-a'), north.reading('gas-001', T + 1000, 13, 'gas', '%LEL', 'ent-a'), north.status('gas-001', T + 500, 'online')])
    field.noteEnvelopes([south.reading('gas-001', T + 2000, 40, 'gas', '%LEL'), south.reading('co-002', T, 5, 'co', 'ppm')])
    expect(field.device('office-north', 'gas-001')).toMatchObject({ office: 'office-north', enterprise: 'ent-a', gateway: 'gw-north', lastSeen: T + 1000, status: 'online', latest: { gas: { value: 13, ts: T + 1000 } } })
    expect(field.device('office-south', 'gas-001')).toMatchObject({ office: 'office-south', lastSeen: T + 2000, latest: { gas: { value: 40 } } })
    expect(field.device('office-south', 'gas-001')?.enterprise).toBeUndefined()
    expect(field.device('office-north', 'co-002')).toBeUndefined()
    expect(field.devicesNamed('gas-001').map((d) => d.office).sort()).toEqual(['office-north', 'office-south'])
    expect(field.allDevices()).toHaveLength(3)

    // The device moves to another enterprise: the old owner is a former one, and the latest
    // values, measured for it, are not carried over.
    field.noteEnvelopes([north.status('gas-001', T + 2000, 'online', 'ent-b')])
    const moved = field.device('office-north', 'gas-001')
    expect(moved).toMatchObject({ enterprise: 'ent-b', formerEnterprises: ['ent-a'], lastSeen: T + 2000, latest: {} })
    // An older reading (the old owner's, replayed late) moves nothing and is not the latest.
    field.noteEnvelopes([north.reading('gas-001', T + 1500, 99, 'gas', '%LEL', 'ent-a')])
    expect(field.device('office-north', 'gas-001')).toMatchObject({ enterprise: 'ent-b', formerEnterprises: ['ent-a'], latest: {} })
    field.noteEnvelopes([north.reading('gas-001', T + 3000, 14, 'gas', '%LEL', 'ent-b')])
    field.close()

    const again = center(path)
    expect(again.device('office-north', 'gas-001')).toEqual({ ...moved, lastSeen: T + 3000, latest: { gas: { value: 14, unit: '%LEL', ts: T + 3000 } } })
    expect(again.device('office-south', 'co-002')).toMatchObject({ latest: { co: { value: 5, unit: 'ppm' } } })
    expect(again.allDevices()).toHaveLength(3)
  })

  it('remembers every enterprise a device reported under, including one seen only in an older envelope, and one moved back to', () => {
    const f = new EnvelopeFactory('gw-n', 'office-n')
    const field = center(':memory:')
    field.noteEnvelopes([f.reading('co-001', T, 1, 'co', 'ppm', 'ent-b')])
    // An alert raised for ent-c arrived ahead of the backlog it belongs after (the urgent lane)...
    field.noteEnvelopes([f.reading('co-001', T + 10_000, 2, 'co', 'ppm', 'ent-c')])
    // ...and the backlog holds a reading taken while ent-a had it.
    field.noteEnvelopes([f.reading('co-001', T - 10_000, 3, 'co', 'ppm', 'ent-a')])
    expect(field.device('office-n', 'co-001')).toMatchObject({ enterprise: 'ent-c', formerEnterprises: ['ent-b', 'ent-a'], latest: { co: { value: 2 } } })
    // Back to ent-b: no longer a former owner; ent-c is.
    field.noteEnvelopes([f.reading('co-001', T + 20_000, 4, 'co', 'ppm', 'ent-b')])
    expect(field.device('office-n', 'co-001')).toMatchObject({ enterprise: 'ent-b', formerEnterprises: ['ent-a', 'ent-c'], latest: { co: { value: 4 } } })
  })
})
