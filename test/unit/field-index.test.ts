import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { openCenterDb, type CenterDb } from '../../cloud-api/center/db.ts'
import { FieldIndex } from '../../cloud-api/center/field.ts'
import { EnvelopeFactory } from '../helpers/envelopes.ts'
import { removeTestDir } from '../helpers/temp.ts'

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
  for (const d of dirs.splice(0)) removeTestDir(d)
})

describe('the field index (devices and gateways the center has heard from)', () => {
  it('keeps same-named devices of two offices apart, follows an owner change, and remembers it all after a restart', () => {
    const dir = mkdtempSync(join(tmpdir(), 'field-'))
    dirs.push(dir)
    const path = join(dir, 'center.db')
    const north = new EnvelopeFactory('gw-north', 'office-north')
    const south = new EnvelopeFactory('gw-south', 'office-south')
    const field = center(path)

    field.noteEnvelopes([north.reading('gas-001', T, 12.5, 'gas', '%LEL', 'ent-a'), north.reading('gas-001', T + 1000, 13, 'gas', '%LEL', 'ent-a'), north.status('gas-001', T + 500, 'online', 'ent-a')])
    field.noteEnvelopes([south.reading('gas-001', T + 2000, 40, 'gas', '%LEL'), south.reading('co-002', T, 5, 'co', 'ppm')])
    expect(field.device('office-north', 'gas-001')).toMatchObject({ office: 'office-north', enterprise: 'ent-a', gateway: 'gw-north', lastSeen: T + 1000, status: 'online', latest: { gas: { value: 13, ts: T + 1000 } } })
    expect(field.device('office-south', 'gas-001')).toMatchObject({ office: 'office-south', lastSeen: T + 2000, latest: { gas: { value: 40 } } })
    expect(field.device('office-south', 'gas-001')?.enterprise).toBeUndefined()
    expect(field.device('office-north', 'co-002')).toBeUndefined()
    expect(field.devicesNamed('gas-001').map((d) => d.office).sort()).toEqual(['office-north', 'office-south'])
    expect(field.allDevices()).toHaveLength(3)

    // The gateway accepts a reading for ent-a (it goes by the bulk lane)...
    const late = north.reading('gas-001', T + 1500, 99, 'gas', '%LEL', 'ent-a')
    // ...then the device is moved to ent-b: the old owner is a former one, with what the device
    // last measured for it; the new owner starts without latest values.
    field.noteEnvelopes([north.status('gas-001', T + 2000, 'online', 'ent-b')])
    const moved = field.device('office-north', 'gas-001')
    expect(moved).toMatchObject({ enterprise: 'ent-b', former: { 'ent-a': { until: T + 1000, latest: { gas: { value: 13 } } } }, lastSeen: T + 2000, latest: {}, status: 'online' })
    // The reading accepted before the move arrives late: it moves nothing and is not the latest.
    field.noteEnvelopes([late])
    expect(field.device('office-north', 'gas-001')).toMatchObject({ enterprise: 'ent-b', former: { 'ent-a': { until: T + 1500, latest: { gas: { value: 99 } } } }, latest: {} })
    field.noteEnvelopes([north.reading('gas-001', T + 3000, 14, 'gas', '%LEL', 'ent-b')])
    const last = structuredClone(field.device('office-north', 'gas-001'))
    field.close()

    const again = center(path)
    expect(again.device('office-north', 'gas-001')).toEqual(last)
    expect(last).toMatchObject({ owner: { gateway: 'gw-north', ts: T + 3000 }, lastSeen: T + 3000, latest: { gas: { value: 14, unit: '%LEL', ts: T + 3000 } } })
    expect(again.device('office-south', 'co-002')).toMatchObject({ latest: { co: { value: 5, unit: 'ppm' } } })
    expect(again.allDevices()).toHaveLength(3)
  })

  it('remembers every enterprise a device reported under, including one seen only in a late envelope, and one moved back to', () => {
    const f = new EnvelopeFactory('gw-n', 'office-n')
    const field = center(':memory:')
    // In the order the gateway accepted them: ent-b's, ent-a's, then ent-c's.
    const [b, a, c] = [f.reading('co-001', T, 1, 'co', 'ppm', 'ent-b'), f.reading('co-001', T + 5000, 3, 'co', 'ppm', 'ent-a'), f.reading('co-001', T + 10_000, 2, 'co', 'ppm', 'ent-c')]
    field.noteEnvelopes([b])
    // ent-c's (an alert's, on the urgent lane) arrives ahead of ent-a's backlog.
    field.noteEnvelopes([c])
    field.noteEnvelopes([a])
    expect(field.device('office-n', 'co-001')).toMatchObject({ enterprise: 'ent-c', latest: { co: { value: 2 } } })
    expect(Object.keys(field.device('office-n', 'co-001')!.former!).sort()).toEqual(['ent-a', 'ent-b'])
    // Back to ent-b: no longer a former owner; ent-c is.
    field.noteEnvelopes([f.reading('co-001', T + 20_000, 4, 'co', 'ppm', 'ent-b')])
    expect(field.device('office-n', 'co-001')).toMatchObject({ enterprise: 'ent-b', latest: { co: { value: 4 } } })
    expect(Object.keys(field.device('office-n', 'co-001')!.former!).sort()).toEqual(['ent-a', 'ent-c'])
  })

  it('orders by the gateway, not by clocks: a gap record stamped later, a device clock ahead or set back decide nothing', () => {
    const f = new EnvelopeFactory('gw-n', 'office-n')
    const field = center(':memory:')
    field.noteEnvelopes([f.reading('gas-009', T, 7, 'gas', '%LEL', 'ent-b')])
    // The gateway's bulk lane sends events (a gap record, stamped at eviction) before telemetry.
    const backlog = [f.reading('gas-009', T + 10 * 60_000, 1, 'gas', '%LEL', 'ent-a'), f.reading('gas-009', T + 20 * 60_000, 2, 'gas', '%LEL', 'ent-a')]
    field.noteEnvelopes([f.gap('gas-009', T + 30 * 60_000)])
    field.noteEnvelopes(backlog)
    expect(field.device('office-n', 'gas-009')).toMatchObject({ enterprise: 'ent-a', former: { 'ent-b': { latest: { gas: { value: 7 } } } }, latest: { gas: { value: 2 } } })
    // A clock in 2099, then one set back to 2024: each is still the gateway's newest.
    field.noteEnvelopes([f.reading('gas-009', Date.UTC(2099, 0, 1), 8, 'gas', '%LEL', 'ent-b')])
    expect(field.device('office-n', 'gas-009')).toMatchObject({ enterprise: 'ent-b' })
    field.noteEnvelopes([f.reading('gas-009', Date.UTC(2024, 0, 1), 3, 'gas', '%LEL', 'ent-a')])
    expect(field.device('office-n', 'gas-009')).toMatchObject({ enterprise: 'ent-a', latest: { gas: { value: 3 } } })
  })

  it("a former owner's minute aggregate or cleared alarm, stamped after the move, moves nothing back", () => {
    const f = new EnvelopeFactory('gw-n', 'office-n')
    const field = center(':memory:')
    field.noteEnvelopes([f.reading('gas-015', T, 7, 'gas', '%LEL', 'ent-a')])
    // A reload moves the sensor to ent-b; its next reading is the first statement of the move.
    field.noteEnvelopes([f.reading('gas-015', T + 30_000, 2, 'gas', '%LEL', 'ent-b')])
    // Then, stamped later: ent-a's alarm cleared by the move, and ent-a's part of the minute closing.
    const cleared = f.alert('gas-015', T + 30_000, { alertId: 'gw-n:1', state: 'cleared' })
    const aggregate = f.aggregate('gas-015', T, 7)
    field.noteEnvelopes([{ ...cleared, enterprise: 'ent-a' }, { ...aggregate, enterprise: 'ent-a' }])
    expect(field.device('office-n', 'gas-015')).toMatchObject({ enterprise: 'ent-b', latest: { gas: { value: 2 } } })
    expect(Object.keys(field.device('office-n', 'gas-015')!.former!)).toEqual(['ent-a'])
  })

  it('a silent sensor moved by a reload moves with its alarm raised under the new owner', () => {
    const f = new EnvelopeFactory('gw-n', 'office-n')
    const field = center(':memory:')
    field.noteEnvelopes([f.reading('gas-016', T, 7, 'gas', '%LEL', 'ent-a')])
    const stale = f.alert('gas-016', T + 600_000, { alertId: 'gw-n:9', state: 'raised', type: 'sensor.stale' })
    field.noteEnvelopes([{ ...stale, enterprise: 'ent-b' }])
    expect(field.device('office-n', 'gas-016')).toMatchObject({ enterprise: 'ent-b', former: { 'ent-a': { until: T } } })
  })

  it('a backlog of aggregates, sent ahead of its readings, moves the device at once', () => {
    const f = new EnvelopeFactory('gw-n', 'office-n')
    const field = center(':memory:')
    // A device first heard of through aggregates (its first readings evicted at the quota).
    field.noteEnvelopes([{ ...f.aggregate('gas-017', T, 5), enterprise: 'ent-a' }, { ...f.aggregate('gas-017', T + 60_000, 5), enterprise: 'ent-b' }])
    expect(field.device('office-n', 'gas-017')).toMatchObject({ enterprise: 'ent-b', former: { 'ent-a': { until: T } } })
    // One heard of through readings, moved while the link was down.
    field.noteEnvelopes([f.reading('gas-018', T, 5, 'gas', '%LEL', 'ent-a')])
    const backlog = [f.reading('gas-018', T + 120_000, 5, 'gas', '%LEL', 'ent-b')]
    field.noteEnvelopes([{ ...f.aggregate('gas-018', T + 120_000, 5), enterprise: 'ent-b' }])
    expect(field.device('office-n', 'gas-018')).toMatchObject({ enterprise: 'ent-b', former: { 'ent-a': { until: T } } })
    field.noteEnvelopes(backlog)
    expect(field.device('office-n', 'gas-018')).toMatchObject({ enterprise: 'ent-b', latest: { gas: { value: 5, ts: T + 120_000 } } })
  })

  it('orders two gateways by time, a tie keeping the current owner', () => {
    const one = new EnvelopeFactory('gw-1', 'office-n')
    const two = new EnvelopeFactory('gw-2', 'office-n')
    const field = center(':memory:')
    field.noteEnvelopes([one.reading('gas-013', T, 1, 'gas', '%LEL', 'ent-a')])
    field.noteEnvelopes([two.reading('gas-013', T, 2, 'gas', '%LEL', 'ent-b')])
    expect(field.device('office-n', 'gas-013')).toMatchObject({ enterprise: 'ent-a', gateway: 'gw-1' })
    field.noteEnvelopes([two.reading('gas-013', T + 1, 3, 'gas', '%LEL', 'ent-b')])
    expect(field.device('office-n', 'gas-013')).toMatchObject({ enterprise: 'ent-b', gateway: 'gw-2' })
  })

  it("keeps a former owner's late status and a sensor taken off its enterprise away from the current owner's view", () => {
    const f = new EnvelopeFactory('gw-n', 'office-n')
    const field = center(':memory:')
    const fault = f.status('gas-011', T + 30_000, 'fault', 'ent-b')
    field.noteEnvelopes([f.reading('gas-011', T, 5, 'gas', '%LEL', 'ent-b'), f.status('gas-011', T + 120_000, 'online', 'ent-a')])
    // ent-b's backlog: a fault from before the move.
    field.noteEnvelopes([fault])
    expect(field.device('office-n', 'gas-011')).toMatchObject({ enterprise: 'ent-a', status: 'online' })
    // Taken off ent-a (its readings name no enterprise now): a move to no owner.
    field.noteEnvelopes([f.reading('gas-011', T + 180_000, 42, 'gas', '%LEL')])
    const d = field.device('office-n', 'gas-011')!
    expect(d.enterprise).toBeUndefined()
    expect(d).toMatchObject({ latest: { gas: { value: 42 } } })
    expect(Object.keys(d.former!).sort()).toEqual(['ent-a', 'ent-b'])
    expect(d.former!['ent-a'].latest).toEqual({})
  })

  it('writes the center database for a new owner, not for every batch of a former owner\'s backlog', () => {
    const f = new EnvelopeFactory('gw-n', 'office-n')
    const field = center(':memory:')
    const backlog = [f.reading('gas-012', T + 1000, 3, 'gas', '%LEL', 'ent-b'), f.reading('gas-012', T + 2000, 4, 'gas', '%LEL', 'ent-b')]
    const older = f.reading('gas-012', T - 1000, 0, 'gas', '%LEL', 'ent-c')
    field.noteEnvelopes([f.reading('gas-012', T + 60_000, 2, 'gas', '%LEL', 'ent-a')])
    field.noteEnvelopes([backlog[0]])
    const flush = vi.spyOn(field, 'flush')
    field.noteEnvelopes([backlog[1]])
    expect(flush).not.toHaveBeenCalled()
    field.noteEnvelopes([older])
    expect(flush).toHaveBeenCalledTimes(1)
  })

  it('upgrades a center database of an earlier version, and one an older binary wrote to after the upgrade', () => {
    const dir = mkdtempSync(join(tmpdir(), 'field-'))
    dirs.push(dir)
    const path = join(dir, 'center.db')
    const f = new EnvelopeFactory('gw-n', 'office-n')
    const first = center(path)
    first.noteEnvelopes([f.reading('gas-014', T, 1, 'gas', '%LEL', 'ent-a')])
    first.close()
    open.pop()!.db.close()
    // As a version-2 binary of 825586d left it: a list of former owners, no owner position.
    const raw = new Database(path)
    raw.exec("ALTER TABLE devices DROP COLUMN former; ALTER TABLE devices DROP COLUMN owner_gateway; ALTER TABLE devices DROP COLUMN owner_seq; ALTER TABLE devices DROP COLUMN owner_ts")
    raw.exec("ALTER TABLE devices ADD COLUMN former_enterprises TEXT NOT NULL DEFAULT '[]'; UPDATE devices SET former_enterprises = '[\"ent-z\"]'; PRAGMA user_version = 2")
    raw.close()
    const again = center(path)
    expect(again.device('office-n', 'gas-014')).toMatchObject({ enterprise: 'ent-a', former: { 'ent-z': { latest: {} } }, owner: { gateway: 'gw-n', seq: 0 } })
    // The next statement from its gateway is the newest, whatever its sequence.
    again.noteEnvelopes([new EnvelopeFactory('gw-n', 'office-n').reading('gas-014', T + 1, 2, 'gas', '%LEL', 'ent-b')])
    expect(again.device('office-n', 'gas-014')).toMatchObject({ enterprise: 'ent-b' })
  })
})
