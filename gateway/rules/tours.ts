/**
 * Patrol tours: did each scheduled round actually get walked?
 *
 * A tour is one run of a route's schedule on one day: [start, start + duration], with a grace
 * period before and after. Its state machine:
 *
 *   scheduled ──first scan──▶ in progress ──all checkpoints──▶ completed
 *       │                          │
 *       └─ end + grace, no scan ─▶ missed      └─ end + grace ─▶ incomplete
 *
 * Alerts (the device of a tour alert is the route):
 * - `patrol.tour_not_started` (major) at start + grace with no scan; cleared by the first scan,
 *   updated to "missed" at end + grace;
 * - `patrol.checkpoint_missed` (major) at end + grace, naming the checkpoints not scanned;
 * - `patrol.tour_late` (minor) when the last checkpoint is scanned after the end;
 * - `patrol.out_of_order` (minor) once per tour, when an ordered route is walked out of order;
 * - `patrol.staff_not_assigned` (minor) once per tour and person.
 * Scans are judged by their own scan time, not their arrival: a wand docked this morning
 * completes yesterday's tour, and clears the alerts that tour raised while nobody knew.
 * Tours that start before the rules first ran are not judged by the clock (no alert flood when a
 * gateway is installed or a route added), though scans still complete them.
 */
import type { Envelope } from '../../contracts/envelope.ts'
import type { RouteConfig } from '../config/schema.ts'
import { minutesOf, type Office } from './office.ts'
import { ownState, type Rule, type RuleOutput } from './rule.ts'

const MINUTE = 60_000
const DAY = 86_400_000
/** Tours are remembered this long after they end (late wand uploads), then forgotten. */
const KEEP_MS = 7 * DAY
/** A judged tour that receives late scans is judged again this long after the last of them. */
const REJUDGE_AFTER_MS = MINUTE

interface TourState {
  route: string
  schedule: number
  start: number
  end: number
  grace: number
  scanned: string[]
  lastScanAt?: number
  /** Ordered routes: index of the checkpoint expected next. */
  nextIndex: number
  finalized?: 'completed' | 'incomplete' | 'missed'
  /** Late scans arrived for a judged tour: judge again at this time (gateway clock), once the upload is over. */
  rejudgeAt?: number
  notStarted?: string
  missed?: string
  outOfOrder?: boolean
  late?: boolean
  wrongStaff?: string[]
}

export type TourStatus = 'scheduled' | 'in_progress' | 'completed' | 'incomplete' | 'missed'

const PREFIX = 'tour'
const SINCE_KEY = 'tours:since'

export class TourRule implements Rule {
  readonly name = 'patrol.tours'
  private tours = new Map<string, TourState>()
  private since: number | undefined
  private readonly routesOf = new Map<string, RouteConfig[]>()

  constructor(private readonly office: Office) {
    for (const route of office.routes.values()) {
      for (const cp of route.checkpoints) {
        const list = this.routesOf.get(cp) ?? []
        list.push(route)
        this.routesOf.set(cp, list)
      }
    }
  }

  restore(state: ReadonlyMap<string, string>): void {
    this.tours = ownState<TourState>(state, PREFIX)
    const since = state.get(SINCE_KEY)
    this.since = since === undefined ? undefined : (JSON.parse(since) as number)
  }

  /** The state of one tour, for status pages and tests. */
  status(route: string, start: number): TourStatus | undefined {
    const t = this.tours.get(`${PREFIX}:${route}@${start}`)
    return t ? (t.finalized ?? (t.scanned.length > 0 ? 'in_progress' : 'scheduled')) : undefined
  }

  evaluate(e: Envelope, out: RuleOutput): void {
    if (e.kind !== 'scan' || out.drop) return
    const { checkpoint, staff } = e.payload
    if (checkpoint === undefined) return
    const found = this.tourFor(checkpoint, e.ts)
    if (!found) {
      out.receipt = { status: 'accepted', checkpoint, reason: 'no tour due' }
      return
    }
    const { key, tour, route } = found
    const schedule = route.schedules[tour.schedule]
    if (tour.scanned.includes(checkpoint)) {
      out.receipt = { status: 'accepted', checkpoint, tour: key.slice(PREFIX.length + 1), reason: 'already scanned on this tour', ...this.next(tour, route) }
      return
    }
    const frame = { device: route.id, ts: e.ts }
    if (staff !== undefined && schedule.staff.length > 0 && !schedule.staff.includes(staff) && !tour.wrongStaff?.includes(staff)) {
      out.raise(
        { type: 'patrol.staff_not_assigned', severity: 'minor', message: `${staff} scanned ${this.name_(checkpoint)} on ${route.name}, a tour assigned to ${schedule.staff.join(', ')}` },
        frame,
      )
      tour.wrongStaff = [...(tour.wrongStaff ?? []), staff]
    }
    if (route.ordered) {
      const index = route.checkpoints.indexOf(checkpoint)
      if (index !== tour.nextIndex && !tour.outOfOrder) {
        const expected = route.checkpoints[tour.nextIndex]
        out.raise(
          { type: 'patrol.out_of_order', severity: 'minor', message: `${route.name}: ${this.name_(checkpoint)} scanned when ${expected ? this.name_(expected) : 'nothing'} was next` },
          frame,
        )
        tour.outOfOrder = true
      }
      tour.nextIndex = Math.max(tour.nextIndex, index + 1)
    }
    tour.scanned.push(checkpoint)
    tour.lastScanAt = Math.max(tour.lastScanAt ?? e.ts, e.ts)
    if (tour.notStarted && tour.scanned.length === 1 && !tour.finalized) {
      const late = e.ts > tour.start + tour.grace ? ' (late)' : ''
      out.follow(tour.notStarted, 'cleared', { type: 'patrol.tour_not_started', severity: 'major', message: `${route.name} started at ${this.clock(e.ts)}${late}` }, frame)
      tour.notStarted = undefined
    }
    if (tour.scanned.length === route.checkpoints.length) this.complete(tour, route, out)
    // A wand uploads a whole round at once: judge again when the upload is over, not per scan.
    else if (tour.finalized) tour.rejudgeAt = out.now + REJUDGE_AFTER_MS
    out.receipt = { status: 'accepted', checkpoint, tour: key.slice(PREFIX.length + 1), ...this.next(tour, route) }
    this.save(out, key, tour)
  }

  tick(out: RuleOutput): void {
    if (this.since === undefined) {
      this.since = out.now
      out.put(SINCE_KEY, this.since)
    }
    for (const route of this.office.routes.values()) {
      for (const instance of this.instances(route, Math.max(this.since, out.now - 2 * DAY), out.now)) {
        if (instance.start < this.since) continue
        const key = this.key(route, instance.start)
        if (!this.tours.has(key)) this.save(out, key, instance)
      }
    }
    for (const [key, tour] of this.tours) {
      const route = this.office.routes.get(tour.route)
      if (!route || tour.end + tour.grace < out.now - KEEP_MS) {
        this.tours.delete(key)
        out.put(key, null)
        continue
      }
      const frame = (ts: number) => ({ device: route.id, ts })
      if (tour.rejudgeAt !== undefined && out.now >= tour.rejudgeAt) {
        tour.rejudgeAt = undefined
        if (tour.finalized !== 'completed') this.rejudge(tour, route, out, frame(tour.lastScanAt!))
        this.save(out, key, tour)
      }
      if (tour.finalized) continue
      if (tour.scanned.length === 0 && !tour.notStarted && out.now >= tour.start + tour.grace) {
        tour.notStarted = out.raise(
          { type: 'patrol.tour_not_started', severity: 'major', message: `${route.name} due at ${this.clock(tour.start)} has not started` },
          frame(tour.start + tour.grace),
        )
        this.save(out, key, tour)
      }
      if (out.now >= tour.end + tour.grace) {
        if (tour.scanned.length === 0) {
          tour.finalized = 'missed'
          if (tour.notStarted) {
            out.follow(tour.notStarted, 'updated', { type: 'patrol.tour_not_started', severity: 'major', message: `${route.name} due at ${this.clock(tour.start)} was missed: no checkpoint scanned` }, frame(tour.end + tour.grace))
          }
        } else {
          tour.finalized = 'incomplete'
          const missing = route.checkpoints.filter((cp) => !tour.scanned.includes(cp))
          tour.missed = out.raise(
            { type: 'patrol.checkpoint_missed', severity: 'major', message: `${route.name} due at ${this.clock(tour.start)}: ${missing.map((cp) => this.name_(cp)).join(', ')} not scanned` },
            frame(tour.end + tour.grace),
          )
        }
        this.save(out, key, tour)
      }
    }
  }

  /**
   * Late scans for a tour already judged (a wand docked after the tour's end), once the upload is
   * over: a missed tour was in fact started, so it is incomplete; an incomplete one has fewer
   * checkpoints missing. (A late upload that completes the tour is handled at once: complete().)
   */
  private rejudge(tour: TourState, route: RouteConfig, out: RuleOutput, frame: { device: string; ts: number }): void {
    const missing = route.checkpoints.filter((cp) => !tour.scanned.includes(cp))
    const message = `${route.name} due at ${this.clock(tour.start)}: ${missing.map((cp) => this.name_(cp)).join(', ')} not scanned`
    if (tour.finalized === 'missed') {
      tour.finalized = 'incomplete'
      if (tour.notStarted) {
        out.follow(tour.notStarted, 'cleared', { type: 'patrol.tour_not_started', severity: 'major', message: `${route.name} was started (scans arrived late)` }, frame)
        tour.notStarted = undefined
      }
      tour.missed = out.raise({ type: 'patrol.checkpoint_missed', severity: 'major', message }, frame)
    } else if (tour.missed) {
      out.follow(tour.missed, 'updated', { type: 'patrol.checkpoint_missed', severity: 'major', message }, frame)
    }
  }

  private complete(tour: TourState, route: RouteConfig, out: RuleOutput): void {
    const frame = { device: route.id, ts: tour.lastScanAt! }
    tour.finalized = 'completed'
    // A late wand upload can complete a tour already judged missed or incomplete.
    if (tour.missed) {
      out.follow(tour.missed, 'cleared', { type: 'patrol.checkpoint_missed', severity: 'major', message: `${route.name}: every checkpoint was walked (scans arrived late)` }, frame)
      tour.missed = undefined
    }
    if (tour.notStarted) {
      out.follow(tour.notStarted, 'cleared', { type: 'patrol.tour_not_started', severity: 'major', message: `${route.name} was walked (scans arrived late)` }, frame)
      tour.notStarted = undefined
    }
    if (tour.lastScanAt! > tour.end && !tour.late) {
      const minutes = Math.round((tour.lastScanAt! - tour.end) / MINUTE)
      out.raise({ type: 'patrol.tour_late', severity: 'minor', message: `${route.name} finished at ${this.clock(tour.lastScanAt!)}, ${minutes} min after its end` }, frame)
      tour.late = true
    }
  }

  /** The tour a scan belongs to: of a route with this checkpoint, whose window holds the scan time. */
  private tourFor(checkpoint: string, ts: number): { key: string; tour: TourState; route: RouteConfig } | undefined {
    for (const route of this.routesOf.get(checkpoint) ?? []) {
      for (const instance of this.instances(route, ts - DAY, ts + DAY)) {
        if (ts < instance.start - instance.grace || ts > instance.end + instance.grace) continue
        const key = this.key(route, instance.start)
        const tour = this.tours.get(key) ?? instance
        this.tours.set(key, tour)
        return { key, tour, route }
      }
    }
    return undefined
  }

  /** Every run of a route's schedules starting in [from, to]. */
  private instances(route: RouteConfig, from: number, to: number): TourState[] {
    const out: TourState[] = []
    for (let day = this.office.localMidnight(from); day <= to; day += DAY) {
      const weekday = this.office.localWeekday(day + DAY / 2)
      route.schedules.forEach((s, i) => {
        if (s.days && !s.days.includes(weekday)) return
        const start = day + minutesOf(s.start) * MINUTE
        if (start < from || start > to) return
        out.push({ route: route.id, schedule: i, start, end: start + s.durationMinutes * MINUTE, grace: s.graceMinutes * MINUTE, scanned: [], nextIndex: 0 })
      })
    }
    return out
  }

  private next(tour: TourState, route: RouteConfig): { next?: string; remaining: number } {
    const remaining = route.checkpoints.length - tour.scanned.length
    if (!route.ordered) return { remaining }
    const next = route.checkpoints.slice(tour.nextIndex).find((cp) => !tour.scanned.includes(cp))
    return next ? { next, remaining } : { remaining }
  }

  private key(route: RouteConfig, start: number): string {
    return `${PREFIX}:${route.id}@${start}`
  }

  private save(out: RuleOutput, key: string, tour: TourState): void {
    this.tours.set(key, tour)
    out.put(key, tour)
  }

  private name_(checkpoint: string): string {
    return this.office.checkpointNames.get(checkpoint) ?? checkpoint
  }

  private clock(ts: number): string {
    const m = this.office.localMinuteOfDay(ts)
    return `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`
  }
}
