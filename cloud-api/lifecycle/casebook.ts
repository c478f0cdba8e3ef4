/**
 * The casebook: every alert and every patrol incident the center has received, with its place in
 * the lifecycle the linked-service center works by:
 *
 *   raised ──acknowledge──▶ acknowledged ──assign──▶ assigned ──resolve──▶ resolved ──close──▶ closed
 *                               │            ▲  └─assign (re-dispatch)─┘       ▲
 *                               └────────────┼──────── resolve ────────────────┘
 *
 * - A gateway's `cleared` event marks the alert cleared (the condition is over) but does not
 *   resolve it: a person still does, after looking.
 * - An alert still `raised` past its acknowledgement SLA (per severity) escalates one level:
 *   grid → community → street → district, and its SLA clock starts again. A cleared alert no
 *   longer escalates: nobody needs waking for a condition that has ended.
 * - Every step is a transition with actor, time and note, kept here (authoritative, answered
 *   from at once) and copied to the event store as the long-term audit trail.
 * - Concurrent actions are serialized by SQLite's single writer and guarded by the state each
 *   action requires; optionally also by the `version` the caller last saw (optimistic locking).
 *   Two people acknowledging at once: one gets 200, the other 409 naming who was first.
 *
 * Replays are harmless: each case remembers the highest gateway sequence applied to it, and a
 * gateway event at or below it changes nothing (InfluxDB cannot tell a replay from a first write).
 */
import { severityRank, type Envelope, type Severity } from '../../contracts/envelope.ts'
import type { Logger } from '../../common/logger.ts'
import { centerEpoch, type CenterDb } from '../center/db.ts'
import type { Subject } from '../access/principal.ts'
import { ApiError } from '../errors.ts'
import type { Feed, FeedEvent } from '../live/feed.ts'
import { StoreRejectedError, type EventStore, type LifecycleRow } from '../store/store.ts'

export const CaseStates = ['raised', 'acknowledged', 'assigned', 'resolved', 'closed'] as const
export type CaseState = (typeof CaseStates)[number]
export const EscalationLevels = ['grid', 'community', 'street', 'district'] as const
export type EscalationLevel = (typeof EscalationLevels)[number]
export const Actions = ['acknowledge', 'assign', 'resolve', 'close'] as const
export type Action = (typeof Actions)[number]

/** Which states each action may start from, and where it leads. */
const RULES: Record<Action, { from: readonly CaseState[]; to: CaseState; past: string }> = {
  acknowledge: { from: ['raised'], to: 'acknowledged', past: 'acknowledged' },
  assign: { from: ['acknowledged', 'assigned'], to: 'assigned', past: 'assigned' },
  resolve: { from: ['acknowledged', 'assigned'], to: 'resolved', past: 'resolved' },
  close: { from: ['resolved'], to: 'closed', past: 'closed' },
}

export interface CaseView {
  id: string
  kind: 'alert' | 'incident'
  office: string
  enterprise?: string
  device: string
  gateway: string
  /** Alert type, or `incident.<category>`. */
  type: string
  severity: Severity
  level: EscalationLevel
  state: CaseState
  raisedAt: string
  updatedAt: string
  clearedAt?: string
  acknowledgedAt?: string
  acknowledgedBy?: string
  assignedAt?: string
  assignedTo?: string
  resolvedAt?: string
  closedAt?: string
  escalations: number
  /** When it escalates unless acknowledged. */
  ackDueAt?: string
  version: number
  /** What the field said: message, quantity, value, unit, threshold, peak (alerts); category, description, reporter, location, photo (incidents). */
  detail: Record<string, unknown>
}

export interface Transition {
  seq: number
  at: string
  action: string
  actor: string
  state: CaseState
  note?: string
  department?: string
  level?: string
}

interface CaseRow {
  id: string
  kind: 'alert' | 'incident'
  office: string
  enterprise: string | null
  device: string
  gateway: string
  type: string
  severity: Severity
  level: EscalationLevel
  state: CaseState
  raised_at: number
  updated_at: number
  cleared_at: number | null
  acknowledged_at: number | null
  acknowledged_by: string | null
  assigned_at: number | null
  assigned_to: string | null
  resolved_at: number | null
  closed_at: number | null
  escalations: number
  ack_due: number | null
  last_seq: number
  version: number
  detail: string
}

interface TransitionRow {
  seq: number
  case_id: string
  ts: number
  action: string
  actor: string
  state: CaseState
  note: string | null
  department: string | null
  level: string | null
}

export interface CaseFilter {
  kind: 'alert' | 'incident'
  /** Undefined: every office. */
  offices?: ReadonlySet<string> | undefined
  states?: readonly CaseState[]
  severity?: Severity
  type?: string
  device?: string
  office?: string
  /** Only alerts the gateway has cleared (true), or not (false). */
  cleared?: boolean
  /** raisedAt bounds, epoch ms, inclusive. */
  from?: number
  to?: number
  /** Per-row scope check beyond the office (inspectors, supervisors). */
  visible?: (s: Subject) => boolean
  limit: number
}

export interface CasebookOptions {
  ackMinutes: Record<Severity, number>
  departments: readonly string[]
  log: Logger
  now?: () => number
}

/** How long a transition may wait before its copy goes to the event store (see scheduleAudit). */
const AUDIT_DELAY_MS = 250

const LEVEL_OF_ALERT = (level: string | undefined): EscalationLevel => (level === 'community' || level === 'street' ? level : 'grid')

export function subjectOf(c: Pick<CaseView, 'office' | 'enterprise' | 'type'>): Subject {
  return { office: c.office, enterprise: c.enterprise, type: c.type }
}

export class Casebook {
  private readonly now: () => number
  /** This center database's id, in every audit row id. */
  /** This center database's own id (center_identity): in audit ids and the live stream's event ids. */
  readonly epoch: string
  private readonly stmt
  private flushing: Promise<number> | undefined
  private auditTimer: NodeJS.Timeout | undefined

  constructor(
    private readonly db: CenterDb,
    private readonly store: EventStore,
    private readonly feed: Feed,
    private readonly options: CasebookOptions,
  ) {
    this.now = options.now ?? Date.now
    this.epoch = centerEpoch(db)
    this.stmt = {
      get: db.prepare<[string], CaseRow>('SELECT * FROM cases WHERE id = ?'),
      insert: db.prepare(
        `INSERT INTO cases (id, kind, office, enterprise, device, gateway, type, severity, level, state, raised_at, updated_at,
           cleared_at, escalations, ack_due, last_seq, version, detail)
         VALUES (@id, @kind, @office, @enterprise, @device, @gateway, @type, @severity, @level, 'raised', @raised_at, @raised_at,
           NULL, 0, @ack_due, @last_seq, 1, @detail)`,
      ),
      transition: db.prepare('INSERT INTO transitions (case_id, ts, action, actor, state, note, department, level) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      history: db.prepare<[string], TransitionRow>('SELECT * FROM transitions WHERE case_id = ? ORDER BY seq'),
      due: db.prepare<[number], CaseRow>("SELECT * FROM cases WHERE ack_due IS NOT NULL AND ack_due <= ? AND state = 'raised' ORDER BY ack_due LIMIT 500"),
      unflushed: db.prepare<[], TransitionRow & { office: string; enterprise: string | null; kind: 'alert' | 'incident' }>(
        `SELECT t.*, c.office, c.enterprise, c.kind FROM transitions t JOIN cases c ON c.id = t.case_id
         WHERE t.flushed = 0 ORDER BY t.seq LIMIT 1000`,
      ),
      markFlushed: db.prepare('UPDATE transitions SET flushed = 1 WHERE seq <= ? AND flushed = 0'),
    }
  }

  // ---- from the field

  /**
   * Applies the alert and incident envelopes of an ingested batch (others are ignored). Returns
   * the feed events to announce; they are announced here after the commit.
   */
  applyEnvelopes(envelopes: readonly Envelope[]): void {
    const events: FeedEvent[] = []
    this.db.transaction(() => {
      for (const e of envelopes) {
        if (e.kind === 'alert') this.applyAlert(e, events)
        else if (e.kind === 'incident') this.applyIncident(e, events)
      }
    })()
    this.feed.announce(events)
    if (events.length > 0) this.scheduleAudit()
  }

  /**
   * Whether an existing case may take this gateway event. Ingest already refuses an alert id of
   * another gateway; this is the second lock, so that no gateway can touch another office's case.
   */
  private owns(existing: CaseRow, e: Envelope, kind: CaseRow['kind']): boolean {
    if (existing.kind === kind && existing.gateway === e.gateway && existing.office === e.office) return true
    this.options.log.warn({ code: 'CLOUD_CASE_FOREIGN_EVENT', case: existing.id, gateway: e.gateway, office: e.office, id: e.id }, 'ignored a gateway event for a case it does not own')
    return false
  }

  private applyAlert(e: Envelope & { kind: 'alert' }, events: FeedEvent[]): void {
    const p = e.payload
    const existing = this.stmt.get.get(p.alertId)
    if (existing && !this.owns(existing, e, 'alert')) return
    const measured = pick(p, ['message', 'quantity', 'value', 'unit', 'threshold', 'peak', 'suppressed', 'cause'])
    if (!existing) {
      // A `cleared` or `updated` can arrive first (out-of-order replay); the case starts from it.
      const level = LEVEL_OF_ALERT(p.level)
      this.stmt.insert.run({
        id: p.alertId,
        kind: 'alert',
        office: e.office,
        enterprise: e.enterprise ?? null,
        device: e.device,
        gateway: e.gateway,
        type: p.type,
        severity: p.severity,
        level,
        raised_at: e.ts,
        ack_due: p.state === 'cleared' ? null : this.ackDue(p.severity, this.now()),
        last_seq: e.seq,
        detail: JSON.stringify({ ...measured, events: 1 }),
      })
      this.addTransition(p.alertId, e.ts, 'raised', `gateway:${e.gateway}`, 'raised', { level })
      if (p.state === 'cleared') this.clear(p.alertId, e)
    } else {
      if (e.seq <= existing.last_seq) return
      const detail = JSON.parse(existing.detail) as Record<string, unknown>
      const next = { ...detail, ...(p.state === 'cleared' ? pick(p, ['value', 'peak']) : measured), events: Number(detail.events ?? 0) + 1 }
      if (typeof detail.peak === 'number' && typeof p.peak === 'number') next.peak = Math.max(detail.peak, p.peak)
      const worse = severityRank[p.severity] > severityRank[existing.severity]
      // Worse while still unacknowledged: the tighter SLA of the new severity counts from the same start.
      let due = existing.ack_due
      if (worse && due !== null) due = Math.min(due, due - this.slaMs(existing) + this.slaMs({ kind: 'alert', severity: p.severity }))
      this.db
        .prepare('UPDATE cases SET detail = ?, last_seq = ?, updated_at = ?, severity = ?, ack_due = ?, version = version + 1 WHERE id = ?')
        .run(JSON.stringify(next), e.seq, Math.max(existing.updated_at, e.ts), worse ? p.severity : existing.severity, due, existing.id)
      if (worse) {
        this.addTransition(existing.id, e.ts, 'severity_raised', `gateway:${e.gateway}`, existing.state, { note: `${existing.severity} → ${p.severity}` })
      }
      if (p.state === 'cleared' && existing.cleared_at === null) this.clear(existing.id, e)
    }
    // The subject comes from the stored case (its office, enterprise and type), so the feed files
    // every event under the case it is about.
    const view = this.view(this.stmt.get.get(p.alertId)!)
    const subject: Subject = subjectOf(view)
    events.push(this.feed.record('alert', subject, e))
    events.push(this.feed.record('alert_update', subject, view))
  }

  private clear(id: string, e: Envelope): void {
    this.db.prepare('UPDATE cases SET cleared_at = ?, ack_due = NULL, version = version + 1 WHERE id = ?').run(e.ts, id)
    const state = this.stmt.get.get(id)!.state
    this.addTransition(id, e.ts, 'cleared', `gateway:${e.gateway}`, state, { note: e.kind === 'alert' ? e.payload.message : undefined })
  }

  private applyIncident(e: Envelope & { kind: 'incident' }, events: FeedEvent[]): void {
    const p = e.payload
    const existing = this.stmt.get.get(p.incidentId)
    if (existing) {
      this.owns(existing, e, 'incident')
      return
    }
    const type = `incident.${p.category}`
    this.stmt.insert.run({
      id: p.incidentId,
      kind: 'incident',
      office: e.office,
      enterprise: e.enterprise ?? null,
      device: e.device,
      gateway: e.gateway,
      type,
      severity: 'major',
      level: p.level,
      raised_at: e.ts,
      ack_due: this.ackDue('major', this.now()),
      last_seq: e.seq,
      detail: JSON.stringify(pick(p, ['category', 'description', 'reporter', 'location', 'photo', 'cause'])),
    })
    this.addTransition(p.incidentId, e.ts, 'raised', p.reporter ? `staff:${p.reporter}` : `gateway:${e.gateway}`, 'raised', { level: p.level })
    events.push(this.feed.record('incident_update', { office: e.office, enterprise: e.enterprise, type, kind: 'incident' }, this.view(this.stmt.get.get(p.incidentId)!)))
  }

  // ---- by people

  /**
   * A person's action. Throws 404 (no such case), 400 (bad department), 409 (wrong state, or
   * `version` given and stale). `mayAct` decides whether this person may act on this case.
   */
  act(
    id: string,
    action: Action,
    actor: string,
    input: { note?: string | undefined; department?: string | undefined; version?: number | undefined },
    mayAct: (c: CaseView) => boolean,
    kind: 'alert' | 'incident',
  ): CaseView {
    const rule = RULES[action]
    if (action === 'assign') {
      if (input.department === undefined) throw new ApiError('CLOUD_REQUEST_INVALID', 'assign needs a department', [{ path: '/department', message: 'required' }])
      if (!this.options.departments.includes(input.department)) {
        throw new ApiError('CLOUD_REQUEST_INVALID', `unknown department "${input.department}"`, [{ path: '/department', message: `must be one of ${this.options.departments.join(', ')}` }])
      }
    }
    let changed: CaseView | undefined
    const events: FeedEvent[] = []
    this.db.transaction(() => {
      const row = this.stmt.get.get(id)
      if (!row || row.kind !== kind) throw new ApiError('CLOUD_NOT_FOUND', `no ${kind} "${id}"`)
      const current = this.view(row)
      if (!mayAct(current)) throw new ApiError('CLOUD_NOT_FOUND', `no ${kind} "${id}"`)
      if (input.version !== undefined && input.version !== row.version) {
        throw new ApiError('CLOUD_CONFLICT', `the ${kind} changed since version ${input.version} (now ${row.version}, ${row.state}); reload it`)
      }
      if (!rule.from.includes(row.state)) throw new ApiError('CLOUD_CONFLICT', this.conflictMessage(current, action))
      const at = this.now()
      const set: Record<string, unknown> = { state: rule.to, updated_at: at, id }
      if (action === 'acknowledge') Object.assign(set, { acknowledged_at: at, acknowledged_by: actor, ack_due: null })
      if (action === 'assign') Object.assign(set, { assigned_at: at, assigned_to: input.department })
      if (action === 'resolve') Object.assign(set, { resolved_at: at })
      if (action === 'close') Object.assign(set, { closed_at: at })
      const columns = Object.keys(set).filter((k) => k !== 'id')
      this.db.prepare(`UPDATE cases SET ${columns.map((c) => `${c} = @${c}`).join(', ')}, version = version + 1 WHERE id = @id`).run(set)
      this.addTransition(id, at, rule.past, actor, rule.to, { note: input.note, department: input.department })
      changed = this.view(this.stmt.get.get(id)!)
      events.push(this.feed.record(`${kind}_update`, { ...subjectOf(changed), kind }, changed))
    })()
    this.feed.announce(events)
    this.scheduleAudit()
    return changed!
  }

  private conflictMessage(c: CaseView, action: Action): string {
    if (action === 'acknowledge' && c.acknowledgedBy) return `already acknowledged by ${c.acknowledgedBy} at ${c.acknowledgedAt}`
    if (action === 'assign' && c.state === 'raised') return `acknowledge it before assigning (it is ${c.state})`
    if (action === 'resolve' && c.state === 'raised') return `acknowledge it before resolving (it is ${c.state})`
    if (action === 'close' && c.state !== 'closed') return `only a resolved ${c.kind} can be closed (it is ${c.state})`
    return `it is already ${c.state}`
  }

  // ---- escalation

  /** Escalates every case past its acknowledgement SLA; returns those escalated. */
  escalateDue(): CaseView[] {
    const now = this.now()
    const escalated: CaseView[] = []
    const events: FeedEvent[] = []
    this.db.transaction(() => {
      for (const row of this.stmt.due.all(now)) {
        const index = EscalationLevels.indexOf(row.level)
        if (index >= EscalationLevels.length - 1) {
          // Already at the top (a deadline left from before): nothing further to escalate to.
          this.db.prepare('UPDATE cases SET ack_due = NULL WHERE id = ?').run(row.id)
          continue
        }
        const level = EscalationLevels[index + 1]
        // Reaching the top, there is nobody further to wake: no next deadline. The alert stays
        // overdue and visible as such.
        const due = index + 1 >= EscalationLevels.length - 1 ? null : this.ackDue(row.kind === 'incident' ? 'major' : row.severity, now)
        this.db
          .prepare('UPDATE cases SET level = ?, escalations = escalations + 1, ack_due = ?, updated_at = ?, version = version + 1 WHERE id = ?')
          .run(level, due, now, row.id)
        const minutes = Math.round((now - (row.ack_due! - this.slaMs(row))) / 60_000)
        this.addTransition(row.id, now, 'escalated', 'system', row.state, { level, note: `not acknowledged within ${minutes} min; escalated from ${row.level} to ${level}` })
        const view = this.view(this.stmt.get.get(row.id)!)
        escalated.push(view)
        events.push(this.feed.record(`${row.kind}_update`, { ...subjectOf(view), kind: row.kind }, view))
      }
    })()
    this.feed.announce(events)
    if (escalated.length > 0) {
      this.options.log.warn({ code: 'CLOUD_ESCALATED', cases: escalated.map((c) => c.id) }, 'cases escalated: not acknowledged within their SLA')
      this.scheduleAudit()
    }
    return escalated
  }

  private slaMs(row: Pick<CaseRow, 'kind' | 'severity'>): number {
    return this.options.ackMinutes[row.kind === 'incident' ? 'major' : row.severity] * 60_000
  }

  private ackDue(severity: Severity, from: number): number {
    return from + this.options.ackMinutes[severity] * 60_000
  }

  // ---- reads

  get(id: string): CaseView | undefined {
    const row = this.stmt.get.get(id)
    return row ? this.view(row) : undefined
  }

  history(id: string): Transition[] {
    return this.stmt.history.all(id).map((t) => ({
      seq: t.seq,
      at: new Date(t.ts).toISOString(),
      action: t.action,
      actor: t.actor,
      state: t.state,
      ...(t.note !== null ? { note: t.note } : {}),
      ...(t.department !== null ? { department: t.department } : {}),
      ...(t.level !== null ? { level: t.level } : {}),
    }))
  }

  /** Newest first. `total` counts every match visible to the caller, before the limit. */
  list(f: CaseFilter): { total: number; items: CaseView[] } {
    const where = ['kind = @kind']
    const args: Record<string, unknown> = { kind: f.kind }
    if (f.states?.length) {
      where.push(`state IN (${f.states.map((_, i) => `@s${i}`).join(', ')})`)
      f.states.forEach((s, i) => (args[`s${i}`] = s))
      // Implied by the states above, but SQLite cannot see that through bound parameters; said
      // outright, it lets an open list use the partial index cases_open instead of a table scan.
      if (!f.states.includes('closed')) where.push(`state <> 'closed'`)
    }
    if (f.offices) {
      if (f.offices.size === 0) return { total: 0, items: [] }
      const list = [...f.offices]
      where.push(`office IN (${list.map((_, i) => `@o${i}`).join(', ')})`)
      list.forEach((o, i) => (args[`o${i}`] = o))
    }
    for (const key of ['severity', 'type', 'device', 'office'] as const) {
      if (f[key] !== undefined) {
        where.push(`${key} = @${key}`)
        args[key] = f[key]
      }
    }
    if (f.cleared !== undefined) where.push(f.cleared ? 'cleared_at IS NOT NULL' : 'cleared_at IS NULL')
    if (f.from !== undefined) {
      where.push('raised_at >= @from')
      args.from = f.from
    }
    if (f.to !== undefined) {
      where.push('raised_at <= @to')
      args.to = f.to
    }
    if (!f.visible && Number.isSafeInteger(f.limit) && f.limit >= 0) {
      // Every match is visible (admins, center staff): count them in SQLite and read only the
      // page. Reading every match whole (24 columns made into a JS object each) just to count
      // it was most of this call's time.
      const { n } = this.db.prepare<[Record<string, unknown>], { n: number }>(`SELECT count(*) AS n FROM cases WHERE ${where.join(' AND ')}`).get(args)!
      const page = this.db
        .prepare<[Record<string, unknown>], CaseRow>(`SELECT * FROM cases WHERE ${where.join(' AND ')} ORDER BY raised_at DESC, id DESC LIMIT @limit`)
        .all({ ...args, limit: f.limit })
      return { total: n, items: page.map((row) => this.view(row)) }
    }
    const rows = this.db.prepare<[Record<string, unknown>], CaseRow>(`SELECT * FROM cases WHERE ${where.join(' AND ')} ORDER BY raised_at DESC, id DESC`).iterate(args)
    const items: CaseView[] = []
    let total = 0
    for (const row of rows) {
      if (f.visible && !f.visible({ office: row.office, enterprise: row.enterprise ?? undefined, type: row.type })) continue
      total++
      if (items.length < f.limit) items.push(this.view(row))
    }
    return { total, items }
  }

  // ---- audit trail to the event store

  /**
   * Copies transitions not yet in the event store there. Runs after every change and on a timer;
   * while the store is down they wait here (the center database is authoritative meanwhile).
   */
  /**
   * Copies soon rather than at once: during a backlog replay every ingest batch may carry alerts,
   * and one event-store write per quarter second carries them all instead of one per batch.
   */
  private scheduleAudit(): void {
    if (this.auditTimer) return
    this.auditTimer = setTimeout(() => {
      this.auditTimer = undefined
      void this.flushAudit()
    }, AUDIT_DELAY_MS)
    this.auditTimer.unref()
  }

  flushAudit(): Promise<number> {
    if (this.auditTimer) {
      clearTimeout(this.auditTimer)
      this.auditTimer = undefined
    }
    this.flushing ??= this.flushOnce().finally(() => (this.flushing = undefined))
    return this.flushing
  }

  private async flushOnce(): Promise<number> {
    let total = 0
    for (;;) {
      const rows = this.stmt.unflushed.all()
      if (rows.length === 0) return total
      const lifecycle: LifecycleRow[] = rows.map((t) => ({
        // The database's epoch keeps ids unique across a center database made anew (its seq
        // starts again at 1, and the stores keep the first row of an id).
        id: `lc:${this.epoch}:${t.seq}`,
        ts: t.ts,
        office: t.office,
        ...(t.enterprise !== null ? { enterprise: t.enterprise } : {}),
        subject: t.kind,
        subjectId: t.case_id,
        action: t.action,
        actor: t.actor,
        state: t.state,
        ...(t.note !== null ? { note: t.note } : {}),
        ...(t.department !== null ? { department: t.department } : {}),
        ...(t.level !== null ? { level: t.level } : {}),
      }))
      try {
        await this.store.writeLifecycle(lifecycle)
      } catch (err) {
        // Rows the store refuses for good (InfluxDB names them: a field type conflict in the
        // database, say) would hold every later row back on each retry; the rest of the write
        // went in. They stay in the center's own database, which is the record; the copy in the
        // time-series store lacks them, and that is logged with their ids.
        if (err instanceof StoreRejectedError && err.problems.length > 0) {
          const ids = err.problems.map((p) => lifecycle[Number(/^\/envelopes\/(\d+)/.exec(p.path)?.[1])]?.id).filter((id) => id !== undefined)
          this.options.log.error({ code: 'CLOUD_AUDIT_REFUSED', reason: err.reason, ids, err: err.message }, 'event store refused audit rows for good; they are kept in the center database only')
        } else {
          this.options.log.warn({ code: 'CLOUD_AUDIT_DEFERRED', pending: rows.length, err: (err as Error).message }, 'audit trail not copied to the event store yet; will retry')
          return total
        }
      }
      this.stmt.markFlushed.run(rows.at(-1)!.seq)
      total += rows.length
    }
  }

  pendingAudit(): number {
    return this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM transitions WHERE flushed = 0').get()!.n
  }

  // ---- internals

  private addTransition(
    id: string,
    ts: number,
    action: string,
    actor: string,
    state: CaseState,
    extra: { note?: string | undefined; department?: string | undefined; level?: string | undefined },
  ): void {
    this.stmt.transition.run(id, ts, action, actor, state, extra.note ?? null, extra.department ?? null, extra.level ?? null)
  }

  private view(r: CaseRow): CaseView {
    const iso = (ms: number | null) => (ms === null ? undefined : new Date(ms).toISOString())
    const optional = {
      enterprise: r.enterprise ?? undefined,
      clearedAt: iso(r.cleared_at),
      acknowledgedAt: iso(r.acknowledged_at),
      acknowledgedBy: r.acknowledged_by ?? undefined,
      assignedAt: iso(r.assigned_at),
      assignedTo: r.assigned_to ?? undefined,
      resolvedAt: iso(r.resolved_at),
      closedAt: iso(r.closed_at),
      ackDueAt: iso(r.ack_due),
    }
    return {
      id: r.id,
      kind: r.kind,
      office: r.office,
      device: r.device,
      gateway: r.gateway,
      type: r.type,
      severity: r.severity,
      level: r.level,
      state: r.state,
      raisedAt: new Date(r.raised_at).toISOString(),
      updatedAt: new Date(r.updated_at).toISOString(),
      escalations: r.escalations,
      version: r.version,
      detail: JSON.parse(r.detail) as Record<string, unknown>,
      ...(Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)) as Partial<CaseView>),
    }
  }
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {}
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k]
  return out
}
