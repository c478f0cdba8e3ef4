/**
 * Patrol compliance at the center: which scheduled tours were walked, judged from the scans the
 * gateways delivered against the office's routes (the same route format the gateway's tour rule
 * uses, judged the same way: a checkpoint counts when scanned within the tour's window and grace).
 *
 * Pure functions of (routes, scans, day, now), so a supervisor's board and the statistics agree,
 * and a wand uploaded late changes yesterday's answer as it should.
 */
import type { RouteConfig } from '../../gateway/config/schema.ts'
import type { ScanRow } from '../store/store.ts'

const MINUTE = 60_000
export const DAY_MS = 86_400_000

export type TourStatus = 'scheduled' | 'in_progress' | 'completed' | 'late' | 'incomplete' | 'missed'

export interface CheckpointProgress {
  checkpoint: string
  scannedAt?: string
  staff?: string
  /** Scanned after the tour's end (within grace). */
  late?: boolean
}

export interface Tour {
  route: string
  routeName: string
  /** Local day, YYYY-MM-DD. */
  day: string
  start: string
  end: string
  status: TourStatus
  assignedStaff: string[]
  staff: string[]
  checkpoints: CheckpointProgress[]
  scanned: number
  missed: string[]
}

/** Epoch ms of the local midnight starting `day` (YYYY-MM-DD) at a fixed UTC offset. */
export function localMidnight(day: string, utcOffsetMinutes: number): number {
  return Date.parse(`${day}T00:00:00Z`) - utcOffsetMinutes * MINUTE
}

export function localDay(ts: number, utcOffsetMinutes: number): string {
  return new Date(ts + utcOffsetMinutes * MINUTE).toISOString().slice(0, 10)
}

function isoWeekday(day: string): number {
  const d = new Date(`${day}T00:00:00Z`).getUTCDay()
  return d === 0 ? 7 : d
}

function minutesOf(clock: string): number {
  const [h, m] = clock.split(':') as [string, string]
  return Number(h) * 60 + Number(m)
}

/**
 * The tours of one local day for these routes, judged at `now`. `scans` must cover the day
 * with its graces (the caller fetches [midnight - 1 day, midnight + 2 days) to be safe).
 */
export function toursOfDay(routes: readonly RouteConfig[], scans: readonly ScanRow[], day: string, utcOffsetMinutes: number, now: number): Tour[] {
  const midnight = localMidnight(day, utcOffsetMinutes)
  const weekday = isoWeekday(day)
  const byCheckpoint = new Map<string, ScanRow[]>()
  for (const s of scans) {
    if (s.checkpoint === undefined) continue
    let list = byCheckpoint.get(s.checkpoint)
    if (!list) byCheckpoint.set(s.checkpoint, (list = []))
    list.push(s)
  }
  const tours: Tour[] = []
  for (const route of routes) {
    for (const schedule of route.schedules) {
      if (schedule.days && !schedule.days.includes(weekday)) continue
      const start = midnight + minutesOf(schedule.start) * MINUTE
      const end = start + schedule.durationMinutes * MINUTE
      const grace = schedule.graceMinutes * MINUTE
      const checkpoints: CheckpointProgress[] = route.checkpoints.map((cp) => {
        const hit = (byCheckpoint.get(cp) ?? []).filter((s) => s.ts >= start - grace && s.ts <= end + grace).sort((a, b) => a.ts - b.ts)[0]
        if (!hit) return { checkpoint: cp }
        return { checkpoint: cp, scannedAt: new Date(hit.ts).toISOString(), ...(hit.staff ? { staff: hit.staff } : {}), ...(hit.ts > end ? { late: true } : {}) }
      })
      const scanned = checkpoints.filter((c) => c.scannedAt !== undefined).length
      const over = now > end + grace
      let status: TourStatus
      if (scanned === route.checkpoints.length) status = checkpoints.some((c) => c.late) ? 'late' : 'completed'
      else if (!over) status = scanned > 0 ? 'in_progress' : 'scheduled'
      else status = scanned > 0 ? 'incomplete' : 'missed'
      tours.push({
        route: route.id,
        routeName: route.name,
        day,
        start: new Date(start).toISOString(),
        end: new Date(end).toISOString(),
        status,
        assignedStaff: [...schedule.staff],
        staff: [...new Set(checkpoints.flatMap((c) => (c.staff ? [c.staff] : [])))],
        checkpoints,
        scanned,
        missed: over ? checkpoints.filter((c) => c.scannedAt === undefined).map((c) => c.checkpoint) : [],
      })
    }
  }
  return tours.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.route < b.route ? -1 : 1))
}

export interface ComplianceRow {
  key: string
  day: string
  tours: number
  judged: number
  completed: number
  late: number
  incomplete: number
  missed: number
  /** Completed (on time or late) over judged tours; absent when nothing was judged yet. */
  compliance?: number
  checkpointsDue: number
  checkpointsScanned: number
}

/** Per route and day, and per staff member and day (tours they were assigned to or walked). */
export function summarize(tours: readonly Tour[]): { byRoute: ComplianceRow[]; byStaff: ComplianceRow[] } {
  const byRoute = new Map<string, ComplianceRow>()
  const byStaff = new Map<string, ComplianceRow>()
  const add = (map: Map<string, ComplianceRow>, key: string, t: Tour) => {
    const id = `${key}\u0000${t.day}`
    let row = map.get(id)
    if (!row) map.set(id, (row = { key, day: t.day, tours: 0, judged: 0, completed: 0, late: 0, incomplete: 0, missed: 0, checkpointsDue: 0, checkpointsScanned: 0 }))
    row.tours++
    if (t.status !== 'scheduled' && t.status !== 'in_progress') row.judged++
    if (t.status === 'completed') row.completed++
    if (t.status === 'late') row.late++
    if (t.status === 'incomplete') row.incomplete++
    if (t.status === 'missed') row.missed++
    row.checkpointsDue += t.checkpoints.length
    row.checkpointsScanned += t.scanned
  }
  for (const t of tours) {
    add(byRoute, t.route, t)
    for (const s of new Set([...t.assignedStaff, ...t.staff])) add(byStaff, s, t)
  }
  const finish = (rows: Iterable<ComplianceRow>) =>
    [...rows]
      .map((r) => (r.judged > 0 ? { ...r, compliance: Math.round(((r.completed + r.late) / r.judged) * 1000) / 1000 } : r))
      .sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : a.key < b.key ? -1 : 1))
  return { byRoute: finish(byRoute.values()), byStaff: finish(byStaff.values()) }
}
