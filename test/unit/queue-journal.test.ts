import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { QueueJournal } from '../../broker/queue-journal.ts'
import { removeTestDir } from '../helpers/temp.ts'

const dirs: string[] = []
function journalPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gridwatch-queue-'))
  dirs.push(dir)
  return join(dir, 'broker.db.queue')
}
afterEach(() => {
  for (const d of dirs.splice(0)) removeTestDir(d)
})

const meta = (topic: string) => JSON.stringify({ cmd: 'publish', topic, qos: 1 })
const rows = (j: QueueJournal) => [...j.live()].map((r) => [r.seq, r.clientId, r.messageId, r.payload.toString(), (JSON.parse(r.meta) as { topic: string }).topic])

describe('queue journal', () => {
  it('replays queued rows, packet ids, rewrites and deletes in queue order after a reopen', () => {
    const path = journalPath()
    const first = new QueueJournal(path)
    first.put(1, 'phone-7', Buffer.from('task 1'), meta('cmd/phone-7/a'))
    first.put(2, 'phone-7', Buffer.from('task 2'), meta('cmd/phone-7/b'))
    first.put(3, 'gw', Buffer.from('reading'), meta('dev/d1/reading'))
    first.setMessageId(2, 12)
    first.rewrite(1, 11, Buffer.from(''), JSON.stringify({ cmd: 'pubrel', messageId: 11 }))
    first.delete(3)
    expect(first.commit()).toBe(true)
    expect(first.commit()).toBe(false)
    first.close()

    const second = new QueueJournal(path)
    expect(second.truncatedBytes).toBe(0)
    expect([...second.live()].map((r) => [r.seq, r.clientId, r.messageId, r.payload.toString(), r.meta])).toEqual([
      [1, 'phone-7', 11, '', JSON.stringify({ cmd: 'pubrel', messageId: 11 })],
      [2, 'phone-7', 12, 'task 2', meta('cmd/phone-7/b')],
    ])
    // Row 3 was acknowledged, and its number is still never given again.
    expect(second.highestSeq).toBe(3)
    expect(second.find('phone-7', 12)?.seq).toBe(2)
    second.close()
  })

  it('cuts a torn tail off at start, so that what is written next is not lost behind it', () => {
    const path = journalPath()
    const first = new QueueJournal(path)
    first.put(1, 'gw', Buffer.from('kept'), meta('dev/d1/reading'))
    first.commit()
    first.close()
    const intact = statSync(path).size
    // A power cut in the middle of the next commit's write: its length, part of its checksum.
    appendFileSync(path, Buffer.from([40, 0, 0, 0, 0x12, 0x34]))

    const second = new QueueJournal(path)
    expect(second.truncatedBytes).toBe(6)
    expect(statSync(path).size).toBe(intact)
    // What was cut is kept aside, not thrown away.
    expect(readdirSync(dirname(path)).filter((f) => f.startsWith('broker.db.queue.cut-'))).toHaveLength(1)
    second.put(2, 'gw', Buffer.from('after'), meta('dev/d1/reading'))
    second.commit()
    second.close()
    expect(rows(new QueueJournal(path, { readOnly: true }))).toEqual([
      [1, 'gw', null, 'kept', 'dev/d1/reading'],
      [2, 'gw', null, 'after', 'dev/d1/reading'],
    ])
  })

  it('stops at a record that fails its checksum', () => {
    const path = journalPath()
    const first = new QueueJournal(path)
    first.put(1, 'gw', Buffer.from('one'), meta('dev/d1/reading'))
    first.commit()
    const oneRecord = statSync(path).size
    first.put(2, 'gw', Buffer.from('two'), meta('dev/d1/reading'))
    first.commit()
    first.close()
    const data = readFileSync(path)
    data[oneRecord + 20] ^= 0xff
    writeFileSync(path, data)
    const second = new QueueJournal(path, { readOnly: true })
    expect(rows(second)).toEqual([[1, 'gw', null, 'one', 'dev/d1/reading']])
    // Read-only: the file is left as it was.
    expect(statSync(path).size).toBe(data.length)
  })

  it('rewrites itself to what is live once it has grown to several times that', () => {
    const path = journalPath()
    const journal = new QueueJournal(path)
    const payload = Buffer.alloc(1024, 7)
    // 12 MB of messages queued and acknowledged, 3 still queued.
    for (let seq = 1; seq <= 12_000; seq++) {
      journal.put(seq, 'gw', payload, meta('dev/d1/reading'))
      if (seq <= 11_997) journal.delete(seq)
      if (seq % 500 === 0) journal.commit()
    }
    journal.setMessageId(11_998, 5)
    journal.commit()
    expect(statSync(path).size).toBeLessThan(8 * 1024 * 1024)
    journal.put(12_001, 'gw', Buffer.from('after the rewrite'), meta('dev/d1/reading'))
    journal.commit()
    journal.close()
    const again = new QueueJournal(path, { readOnly: true })
    // The numbers of rows acknowledged before the rewrite are still never given again.
    expect(again.highestSeq).toBe(12_001)
    expect([...again.live()].map((r) => [r.seq, r.messageId])).toEqual([
      [11_998, 5],
      [11_999, null],
      [12_000, null],
      [12_001, null],
    ])
  })

  it('read-only, it neither creates a missing file nor cuts a torn one', () => {
    const path = journalPath()
    expect([...new QueueJournal(path, { readOnly: true }).live()]).toEqual([])
    expect(existsSync(path)).toBe(false)
  })

  it('in memory (no file) keeps rows and writes nothing', () => {
    const journal = new QueueJournal(undefined)
    journal.put(1, 'gw', Buffer.from('x'), meta('dev/d1/reading'))
    expect(journal.commit()).toBe(false)
    expect(rows(journal)).toEqual([[1, 'gw', null, 'x', 'dev/d1/reading']])
  })
})
