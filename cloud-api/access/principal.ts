/**
 * Who is asking, and what they may see.
 *
 *   admin       manages users, tokens and gateways; reads everything; does not work alerts
 *   center      linked-service center staff: everything of their district's offices, and acts on
 *               its alerts and incidents
 *   inspector   safety inspectors: their enterprises' sensors, readings and sensor alerts
 *   supervisor  patrol supervisors: tours, scans, patrol alerts and incidents of their offices
 *   gateway     a street office's gateway: ingest only, for its own office
 *
 * Scope is resolved once per token into sets, so a check per row is a set lookup.
 */
import type { Organization } from './organization.ts'

export const Roles = ['admin', 'center', 'inspector', 'supervisor'] as const
export type Role = (typeof Roles)[number]

/** What an alert or a live event is about, for deciding who may see it. */
export interface Subject {
  office: string
  enterprise?: string | undefined
  /** Alert type (sensor.threshold, patrol.tour_not_started, ...) or envelope kind. */
  type?: string | undefined
  /** Envelope kind, when the subject is raw data rather than an alert. */
  kind?: string | undefined
}

export interface UserPrincipal {
  kind: 'user'
  name: string
  role: Role
  /** Offices whose data this user may see at all; `all` for admins. */
  offices: ReadonlySet<string> | 'all'
  /** For inspectors: the enterprises they look after. */
  enterprises?: ReadonlySet<string>
  /** Lab mode (reads.open): an anonymous reader who may not act. */
  anonymous?: boolean
}

export interface GatewayPrincipal {
  kind: 'gateway'
  id: string
  office: string
}

export type Principal = UserPrincipal | GatewayPrincipal

export interface ScopeSpec {
  district?: string | undefined
  offices?: readonly string[] | undefined
  enterprises?: readonly string[] | undefined
}

/** Resolves a user's configured scope against the organization. Unknown names simply match nothing. */
export function userPrincipal(name: string, role: Role, scope: ScopeSpec, org: Organization): UserPrincipal {
  switch (role) {
    case 'admin':
      return { kind: 'user', name, role, offices: 'all' }
    case 'center':
      return { kind: 'user', name, role, offices: new Set(scope.district ? org.officesOfDistrict(scope.district) : []) }
    case 'supervisor':
      return { kind: 'user', name, role, offices: new Set(scope.offices ?? []) }
    case 'inspector': {
      const enterprises = new Set(scope.enterprises ?? [])
      const offices = new Set([...enterprises].map((e) => org.officeOfEnterprise(e)).filter((o): o is string => o !== undefined))
      return { kind: 'user', name, role, offices, enterprises }
    }
  }
}

const PATROL_KINDS = new Set(['scan', 'report', 'incident'])
const SENSOR_KINDS = new Set(['reading', 'aggregate', 'status'])

/** Whether the principal may see data or an alert about `s`. */
export function canSee(p: UserPrincipal, s: Subject): boolean {
  if (p.offices !== 'all' && !p.offices.has(s.office)) return false
  switch (p.role) {
    case 'admin':
    case 'center':
      return true
    case 'inspector':
      // Their enterprises' sensors: sensor data and sensor alerts, nothing of patrols or cameras.
      if (s.enterprise === undefined || !p.enterprises?.has(s.enterprise)) return false
      return s.type !== undefined ? s.type.startsWith('sensor.') : s.kind !== undefined && SENSOR_KINDS.has(s.kind)
    case 'supervisor':
      // Tours, scans and incidents: patrol alerts and the incidents patrol staff report.
      return s.type !== undefined ? s.type.startsWith('patrol.') || s.type.startsWith('incident.') : s.kind !== undefined && PATROL_KINDS.has(s.kind)
  }
}

/** Whether the principal may work (acknowledge, assign, resolve, close) alerts and incidents about `s`. */
export function canAct(p: UserPrincipal, s: Subject): boolean {
  return p.role === 'center' && !p.anonymous && canSee(p, s)
}

/**
 * The enterprises whose readings the principal may see, among `owners` (those a device or an
 * alert has had), for the store's `enterprises` filter: undefined means every reading of a device
 * they may see. Inspectors see a reading only if it was recorded under one of their enterprises,
 * so a sensor moved between enterprises shows each owner its own part of the history.
 */
export function readingEnterprises(p: UserPrincipal, owners: readonly (string | undefined)[]): string[] | undefined {
  if (p.role !== 'inspector') return undefined
  return owners.filter((e): e is string => e !== undefined && p.enterprises?.has(e) === true)
}

/** Offices to ask the store for: undefined means every office. */
export function officeFilter(p: UserPrincipal): ReadonlySet<string> | undefined {
  return p.offices === 'all' ? undefined : p.offices
}
