import { describe, expect, it } from 'vitest'
import { openCenterDb } from '../../cloud-api/center/db.ts'
import { Feed } from '../../cloud-api/live/feed.ts'

describe('the live feed', () => {
  it("replays one caller's offices in sequence order, reading only their rows", () => {
    const db = openCenterDb(':memory:')
    const feed = new Feed(db)
    const offices = ['o-a', 'o-c', 'o-b', 'o-c', 'o-a', 'o-c', 'o-b']
    offices.forEach((office, i) => feed.record('alert_update', { office }, { n: i }))
    const seqs = (events: { seq?: number; data: string }[]) => events.map((e) => (JSON.parse(e.data) as { n: number }).n)
    expect(seqs(feed.since(0, 10, new Set(['o-a', 'o-b'])))).toEqual([0, 2, 4, 6])
    expect(seqs(feed.since(0, 3, new Set(['o-a', 'o-b'])))).toEqual([0, 2, 4])
    expect(seqs(feed.since(3, 10, new Set(['o-b'])))).toEqual([6])
    expect(seqs(feed.since(0, 10))).toEqual([0, 1, 2, 3, 4, 5, 6])
    // Through the office index: the plan does not scan other offices' rows.
    const plan = db.prepare('EXPLAIN QUERY PLAN SELECT * FROM feed WHERE office = ? AND seq > ? ORDER BY seq LIMIT ?').all('o-a', 0, 10) as { detail: string }[]
    expect(plan.map((p) => p.detail).join(' ')).toMatch(/USING INDEX feed_by_office/)
    db.close()
  })
})
