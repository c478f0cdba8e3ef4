import { mkdtempSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import type { EnvelopeDraft } from '../../contracts/envelope.ts'
import { Outbox, OutboxOwnerError, Priority } from '../../gateway/outbox/outbox.ts'
import { removeTestDir } from '../helpers/temp.ts'

const dirs: string[] = []
function tempPath() {
  const dir = mkdtempSync(join(tmpdir(), 'gridwatch-outbox-'))
  dirs.push(dir)
  return join(dir, 'outbox.db')
}
afterEach(() => {
  for (const d of dirs.splice(0)) removeTestDir(d)
})

const T = Date.UTC(2026, 10, 26)
const reading = (value: number): EnvelopeDraft => ({ gateway: 'gw-1', office: 'o', device: 'd', ts: T, kind: 'reading', payload: { quantity: 'gas', value, unit: '%LEL' } })
const alert = (): EnvelopeDraft => ({ gateway: 'gw-1', office: 'o', device: 'd', ts: T, kind: 'alert', payload: { alertId: 'gw-1:1', state: 'raised', type: 'patrol.sos', severity: 'critical', message: 'sos' } })

describe('Outbox', () => {
  it('commits appends of one event-loop turn in one transaction and resolves after commit', async () => {
    const commits: number[] = []
    const box = new Outbox({ path: tempPath(), gatewayId: 'gw-1', onCommit: (e) => commits.push(e.length) })
    await Promise.all(Array.from({ length: 50 }, (_, i) => box.append([box.stamp(reading(i))])))
    expect(commits).toEqual([50])
    expect(box.pendingCount()).toBe(50)
    box.close()
  })

  it('commits an alert as soon as the callback returns, with what is pending, not at the end of the turn', async () => {
    const commits: string[][] = []
    const box = new Outbox({ path: tempPath(), gatewayId: 'gw-1', onCommit: (e) => commits.push(e.map((x) => x.kind)) })
    const before = box.append([box.stamp(reading(1))])
    let alertsCommitted = 0
    box.appendCb([box.stamp(alert())], [], (err) => (alertsCommitted += err === null ? 1 : 0))
    box.appendCb([box.stamp(alert())], [], (err) => (alertsCommitted += err === null ? 1 : 0))
    // Not inside append: no acknowledgement runs in another device's call.
    expect(alertsCommitted).toBe(0)
    let turnEnded = false
    setImmediate(() => (turnEnded = true))
    await Promise.resolve()
    // One commit for both alerts and the reading before them, before the turn's end.
    expect(turnEnded).toBe(false)
    expect(alertsCommitted).toBe(2)
    expect(commits).toEqual([['reading', 'alert', 'alert']])
    const after = box.append([box.stamp(reading(2))])
    await Promise.resolve()
    expect(commits).toHaveLength(1)
    await Promise.all([before, after])
    expect(commits).toEqual([['reading', 'alert', 'alert'], ['reading']])
    box.close()
  })

  it('answers every caller of a commit even when one caller\'s callback throws, and says so', async () => {
    const logged: { code?: string; callback?: string }[] = []
    const logger = { error: (o: { code?: string; callback?: string }) => void logged.push(o), warn: () => {}, info: () => {}, debug: () => {} } as never
    const box = new Outbox({ path: tempPath(), gatewayId: 'gw-1', logger, onCommit: () => { throw new Error('hook bug') } })
    const answered: string[] = []
    box.appendCb([box.stamp(reading(1))], [], () => answered.push('first'))
    box.appendCb([box.stamp(reading(2))], [], () => {
      throw new Error('a device handler bug')
    })
    box.appendCb([box.stamp(reading(3))], [], () => answered.push('third'))
    // Not through the scheduler: a throw would surface here, as it would end the process there.
    expect(() => box.flush()).not.toThrow()
    expect(answered).toEqual(['first', 'third'])
    expect(logged.filter((l) => l.code === 'GW_OUTBOX_CALLBACK_FAILED').map((l) => l.callback)).toEqual(['done', 'onCommit'])
    expect(box.stats().callbackFailures).toBe(2)
    expect(box.stats().pending.telemetry).toBe(3)
    box.close()
  })

  it('caps a group commit at maxBatchRows', async () => {
    const commits: number[] = []
    const box = new Outbox({ path: tempPath(), gatewayId: 'gw-1', maxBatchRows: 20, onCommit: (e) => commits.push(e.length) })
    await Promise.all(Array.from({ length: 50 }, (_, i) => box.append([box.stamp(reading(i))])))
    expect(commits).toEqual([20, 20, 10])
    box.close()
  })

  it('never reuses a sequence number, even after every row was forwarded and the gateway restarted', async () => {
    const path = tempPath()
    let box = new Outbox({ path, gatewayId: 'gw-1' })
    const first = [box.stamp(reading(1)), box.stamp(reading(2))]
    expect(first[1].seq).toBe(first[0].seq + 1)
    await box.append(first)
    box.ack(first.map((e) => e.seq))
    box.close()
    box = new Outbox({ path, gatewayId: 'gw-1' })
    const next = box.stamp(reading(3))
    expect(next.seq).toBe(first[1].seq + 1)
    expect(next.id).toBe(`gw-1:${next.seq}`)
    box.close()
  })

  it('a new file (a replaced disk) does not number from 1 again: it starts past any earlier file', async () => {
    const at = (ms: number) => new Outbox({ path: tempPath(), gatewayId: 'gw-1', now: () => ms })
    // An earlier file, started a year ago, that committed 5,000 envelopes a second all year.
    const old = at(Date.UTC(2025, 10, 27))
    const oldFirst = old.stamp(reading(1)).seq
    old.close()
    const oldLast = oldFirst + 5000 * 365 * 86_400
    const replaced = at(Date.UTC(2026, 10, 27))
    const first = replaced.stamp(reading(1)).seq
    replaced.close()
    expect(first).toBeGreaterThan(oldLast)
    expect(Number.isSafeInteger(first)).toBe(true)
    // In 2255 it would pass 2^53.
    expect(Number.isSafeInteger(Date.UTC(2254, 0, 1) * 1000)).toBe(true)
  })

  it('is durable: what append() resolved is in the file for another connection to read', async () => {
    const path = tempPath()
    const box = new Outbox({ path, gatewayId: 'gw-1' })
    await box.append([box.stamp(reading(42))])
    const other = new Database(path, { readonly: true })
    const rows = other.prepare('SELECT body FROM outbox').all() as { body: string }[]
    other.close()
    expect(rows.map((r) => (JSON.parse(r.body) as { payload: { value: number } }).payload.value)).toEqual([42])
    expect(box.stats().lastSeq).toBe(box.peek(1)[0].seq)
    box.close()
  })

  it('hands out alerts before telemetry, oldest first within each class', async () => {
    // Numbered from 1 here (a clock of 0), to read the order at a glance.
    const box = new Outbox({ path: tempPath(), gatewayId: 'gw-1', now: () => 0 })
    await box.append([box.stamp(reading(1)), box.stamp(reading(2)), box.stamp(alert()), box.stamp(reading(3))])
    const rows = box.peek(10)
    expect(rows.map((r) => [r.priority, r.seq])).toEqual([
      [Priority.alert, 3],
      [Priority.telemetry, 1],
      [Priority.telemetry, 2],
      [Priority.telemetry, 4],
    ])
    expect(box.stats().pending).toEqual({ alert: 1, event: 0, aggregate: 0, telemetry: 3 })
    box.close()
  })

  it('commits rule state in the same transaction as the envelopes, and reads it back after reopen', async () => {
    const path = tempPath()
    let box = new Outbox({ path, gatewayId: 'gw-1' })
    await box.append([box.stamp(alert())], [{ key: 'alarm:d:gas', value: '{"x":1}' }])
    await box.append([], [{ key: 'camera:c:intrusion', value: '5' }])
    await box.append([], [{ key: 'camera:c:intrusion', value: null }])
    box.close()
    box = new Outbox({ path, gatewayId: 'gw-1' })
    expect([...box.loadState()]).toEqual([['alarm:d:gas', '{"x":1}']])
    box.close()
  })

  it('moves a refused row to the dead-letter table instead of dropping it', async () => {
    const box = new Outbox({ path: tempPath(), gatewayId: 'gw-1' })
    const e = box.stamp(reading(1))
    await box.append([e])
    box.deadLetter(e.seq, '/envelopes/0/payload/value: bad')
    expect(box.pendingCount()).toBe(0)
    expect(box.deadLetterCount()).toBe(1)
    box.close()
  })

  it('keeps its class counts right through acks, dead letters and a reopen (it never counts rows on the hot path)', async () => {
    const path = tempPath()
    let box = new Outbox({ path, gatewayId: 'gw-1' })
    const rows = [box.stamp(reading(1)), box.stamp(reading(2)), box.stamp(alert()), box.stamp(reading(3))]
    await box.append(rows)
    box.ack([rows[0].seq, rows[2].seq, 999_999])
    box.deadLetter(rows[1].seq, 'bad')
    expect(box.pendingCount()).toBe(1)
    expect(box.stats().pending).toEqual({ alert: 0, event: 0, aggregate: 0, telemetry: 1 })
    box.close()
    box = new Outbox({ path, gatewayId: 'gw-1' })
    expect(box.stats().pending).toEqual({ alert: 0, event: 0, aggregate: 0, telemetry: 1 })
    expect(box.stats().oldestPendingMs.telemetry).toBeGreaterThanOrEqual(0)
    expect(box.stats().oldestPendingMs.alert).toBeNull()
    box.close()
  })

  it('recognises a redelivered transmission, also after a restart', async () => {
    const path = tempPath()
    let box = new Outbox({ path, gatewayId: 'gw-1' })
    const t = { client: 'dev-1', packet: 17, hash: 12345 }
    expect(box.isCommitted(t)).toBe(false)
    await new Promise<void>((resolve, reject) => box.appendCb([box.stamp(reading(1))], [], (err) => (err ? reject(err) : resolve()), t))
    expect(box.isCommitted(t)).toBe(true)
    expect(box.isCommitted({ ...t, hash: 1 })).toBe(false)
    box.close()
    box = new Outbox({ path, gatewayId: 'gw-1' })
    expect(box.isCommitted(t)).toBe(true)
    box.close()
  })

  it('starts its WAL over under steady writes, instead of letting it grow without end', async () => {
    const path = tempPath()
    let restarts = 0
    let restarted: () => void = () => {}
    const box = new Outbox({
      path,
      gatewayId: 'gw-1',
      onWalRestart: () => {
        restarts++
        restarted()
      },
    })
    const big = (i: number): EnvelopeDraft => ({ gateway: 'gw-1', office: 'o', device: 'd', ts: T, kind: 'reading', payload: { quantity: 'gas', value: i, unit: 'x'.repeat(2000) } })
    // Commit after commit with no pause (each awaits the last), as steady ingest does, until the
    // checkpoint thread and this one have restarted the WAL once.
    const done = new Promise<void>((resolve) => (restarted = resolve))
    let written = 0
    const writer = (async () => {
      while (restarts === 0 && written < 40_000) {
        await box.append(Array.from({ length: 20 }, (_, i) => box.stamp(big(written + i))))
        written += 20
      }
    })()
    await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error(`no WAL restart after ${written} rows`)), 20_000))])
    await writer
    expect(restarts).toBe(1)
    // The next commit starts the WAL from its beginning, and SQLite cuts the file back to 16 MB.
    await box.append([box.stamp(reading(1))])
    expect(statSync(path + '-wal').size).toBeLessThanOrEqual(16 * 1024 * 1024)
    box.close()
  }, 30_000)

  it('remembers the last 16,384 transmissions across clients, and forgets the oldest first', async () => {
    const box = new Outbox({ path: tempPath(), gatewayId: 'gw-1' })
    const sent: { client: string; packet: number; hash: number }[] = []
    // Three clients, packet ids wrapping at 65,535 as MQTT's do, 20,000 messages in all.
    for (let i = 0; i < 20_000; i++) sent.push({ client: `dev-${i % 3}`, packet: (Math.floor(i / 3) % 65535) + 1, hash: i })
    await Promise.all(sent.map((t, i) => new Promise<void>((resolve, reject) => box.appendCb([box.stamp(reading(i))], [], (err) => (err ? reject(err) : resolve()), t))))
    const known = sent.filter((t) => box.isCommitted(t)).map((t) => t.hash)
    expect(known).toEqual(sent.slice(20_000 - 16_384).map((t) => t.hash))
    // A client reusing a packet id for a new message: the new payload is what counts.
    const last = sent[sent.length - 1]
    await new Promise<void>((resolve, reject) => box.appendCb([box.stamp(reading(0))], [], (err) => (err ? reject(err) : resolve()), { ...last, hash: 777 }))
    expect(box.isCommitted({ ...last, hash: 777 })).toBe(true)
    expect(box.isCommitted(last)).toBe(false)
    box.close()
  })

  it('remembers a client whose only remembered transmission is the one its next one pushes out', async () => {
    const box = new Outbox({ path: tempPath(), gatewayId: 'gw-1' })
    const commit = (t: { client: string; packet: number; hash: number }) =>
      new Promise<void>((resolve, reject) => box.appendCb([box.stamp(reading(0))], [], (err) => (err ? reject(err) : resolve()), t))
    await commit({ client: 'solo', packet: 1, hash: 1 })
    await Promise.all(Array.from({ length: 16_383 }, (_, i) => commit({ client: 'busy', packet: (i % 65535) + 1, hash: i })))
    // The ring is full; this one takes the slot of solo's first.
    await commit({ client: 'solo', packet: 2, hash: 2 })
    expect(box.isCommitted({ client: 'solo', packet: 1, hash: 1 })).toBe(false)
    expect(box.isCommitted({ client: 'solo', packet: 2, hash: 2 })).toBe(true)
    box.close()
  })

  it('rejects appends after close rather than losing them silently', async () => {
    const box = new Outbox({ path: tempPath(), gatewayId: 'gw-1' })
    box.close()
    await expect(box.append([box.stamp(reading(1))])).rejects.toThrow('closed')
  })
})

describe('an outbox file and whose it is', () => {
  it('is not taken over by another gateway id or office while it holds envelopes; once empty it is', async () => {
    const path = tempPath()
    const first = new Outbox({ path, gatewayId: 'gw-1', officeId: 'o' })
    const row = first.stamp(reading(1))
    await first.append([row])
    first.close()
    // The center would refuse these envelopes (403) under another gateway or office, forever.
    expect(() => new Outbox({ path, gatewayId: 'gw-2', officeId: 'o' })).toThrow(OutboxOwnerError)
    expect(() => new Outbox({ path, gatewayId: 'gw-1', officeId: 'o-2' })).toThrow(/holds 1 envelopes of office "o", not "o-2"/)
    const again = new Outbox({ path, gatewayId: 'gw-1', officeId: 'o' })
    again.ack([row.seq])
    again.close()
    const renamed = new Outbox({ path, gatewayId: 'gw-2', officeId: 'o-2' })
    expect(renamed.pendingCount()).toBe(0)
    renamed.close()
  })
})
