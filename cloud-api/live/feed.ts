/**
 * The live feed: what the center announces to open consoles (GET /v1/stream).
 *
 * Replayable events (a gateway's alert envelope, every change of an alert or incident) are
 * numbered and kept in the center database, so a console that lost its connection sends
 * `Last-Event-ID` and receives what it missed. Raw data (readings, scans, ...) is live only:
 * it is announced without an id and a reconnect does not replay it.
 */
import { EventEmitter } from 'node:events'
import { centerEpoch, eventIdKey, type CenterDb } from '../center/db.ts'
import { EventIds } from './event-ids.ts'
import type { Subject } from '../access/principal.ts'

export interface FeedEvent {
  /** Present for replayable events. */
  seq?: number
  event: string
  subject: Subject
  /** JSON text of the event's data, serialized once for every console. */
  data: string
}

/** Replayable history kept: this long, and at most this many events. */
const KEEP_MS = 7 * 86_400_000
const KEEP_ROWS = 200_000
const PRUNE_EVERY = 1000

interface FeedRow {
  seq: number
  event: string
  office: string
  enterprise: string | null
  type: string | null
  kind: string | null
  data: string
}

export class Feed {
  private readonly emitter = new EventEmitter()
  private readonly insert
  private readonly after
  private readonly afterInOffice
  private appended = 0
  /** How a replayable event's sequence is shown to consoles, and read back from Last-Event-ID. */
  readonly ids: EventIds

  constructor(
    private readonly db: CenterDb,
    private readonly now: () => number = Date.now,
  ) {
    // One listener per open console; the default warning at 10 is not a leak here.
    this.emitter.setMaxListeners(0)
    this.ids = new EventIds(centerEpoch(db), eventIdKey(db))
    this.insert = db.prepare('INSERT INTO feed (ts, event, office, enterprise, type, kind, data) VALUES (?, ?, ?, ?, ?, ?, ?)')
    this.after = db.prepare<[number, number], FeedRow>('SELECT * FROM feed WHERE seq > ? ORDER BY seq LIMIT ?')
    this.afterInOffice = db.prepare<[string, number, number], FeedRow>('SELECT * FROM feed WHERE office = ? AND seq > ? ORDER BY seq LIMIT ?')
  }

  /**
   * Records a replayable event. Call inside the transaction that made the change, then `announce`
   * the returned event after the commit, so a console never sees what was rolled back.
   */
  record(event: string, subject: Subject, data: unknown): FeedEvent {
    const text = JSON.stringify(data)
    const seq = Number(this.insert.run(this.now(), event, subject.office, subject.enterprise ?? null, subject.type ?? null, subject.kind ?? null, text).lastInsertRowid)
    if (++this.appended % PRUNE_EVERY === 0) this.prune()
    return { seq, event, subject, data: text }
  }

  announce(events: readonly FeedEvent[]): void {
    if (events.length > 0) this.emitter.emit('events', events)
  }

  subscribe(listener: (events: readonly FeedEvent[]) => void): () => void {
    this.emitter.on('events', listener)
    return () => this.emitter.off('events', listener)
  }

  /**
   * Replayable events after `seq`, oldest first; with `offices`, only theirs. Each office is read
   * through its own index range, so the time a replay takes depends on the events of the
   * caller's offices, not on how many other offices had in between (a console could otherwise
   * time its replays to count them).
   */
  since(seq: number, limit: number, offices?: ReadonlySet<string>): FeedEvent[] {
    let rows: FeedRow[]
    if (offices === undefined) rows = this.after.all(seq, limit)
    else {
      rows = [...offices].flatMap((office) => this.afterInOffice.all(office, seq, limit))
      if (offices.size > 1) rows = rows.sort((x, y) => x.seq - y.seq).slice(0, limit)
    }
    return rows.map((r) => ({
      seq: r.seq,
      event: r.event,
      subject: { office: r.office, enterprise: r.enterprise ?? undefined, type: r.type ?? undefined, kind: r.kind ?? undefined },
      data: r.data,
    }))
  }

  /** The oldest sequence number kept, or undefined for an empty feed. */
  oldest(): number | undefined {
    return this.db.prepare<[], { seq: number | null }>('SELECT min(seq) AS seq FROM feed').get()?.seq ?? undefined
  }

  /** The newest sequence number, or 0. */
  head(): number {
    return this.db.prepare<[], { seq: number | null }>('SELECT max(seq) AS seq FROM feed').get()?.seq ?? 0
  }

  private prune(): void {
    this.db.prepare('DELETE FROM feed WHERE ts < ? OR seq <= (SELECT max(seq) FROM feed) - ?').run(this.now() - KEEP_MS, KEEP_ROWS)
  }
}
