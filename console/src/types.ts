/** The shapes the center API answers with (cloud-api/routes/*.ts), as far as the console reads them. */

export type Role = 'admin' | 'center' | 'inspector' | 'supervisor'
export type Severity = 'critical' | 'major' | 'minor'
export type CaseState = 'raised' | 'acknowledged' | 'assigned' | 'resolved' | 'closed'
export type CaseAction = 'acknowledge' | 'assign' | 'resolve' | 'close'

export interface User {
  name: string
  role: Role
  anonymous?: boolean
  offices: string[]
  enterprises?: string[]
  officeNames?: Record<string, string>
  enterpriseNames?: Record<string, string>
  /** The offices' UTC offset in minutes, for showing times on their clock. */
  utcOffsetMinutes?: number
}

export interface Department {
  id: string
  name: string
}

export interface Me extends User {
  departments: Department[]
}

export interface Session {
  token: string
  expiresAt: string
  user: User
}

export interface CaseDetail {
  message?: string
  quantity?: string
  value?: number
  unit?: string
  threshold?: number
  peak?: number
  category?: string
  description?: string
  reporter?: string
  location?: { lat: number; lon: number }
  photo?: string
  [key: string]: unknown
}

/** An alert or an incident (CaseView in cloud-api/lifecycle/casebook.ts). */
export interface Case {
  id: string
  kind: 'alert' | 'incident'
  office: string
  enterprise?: string
  device: string
  gateway?: string
  type: string
  severity: Severity
  level: string
  state: CaseState
  raisedAt: string
  updatedAt?: string
  clearedAt?: string
  acknowledgedAt?: string
  acknowledgedBy?: string
  assignedAt?: string
  assignedTo?: string
  resolvedAt?: string
  closedAt?: string
  escalations: number
  ackDueAt?: string
  version: number
  detail: CaseDetail
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

export interface Reading {
  time: string
  value: number
  unit: string
}

export interface CaseWithHistory {
  item: Case
  history: Transition[]
  readings?: Reading[]
  mayAct: boolean
}

export interface Levels {
  unit?: string
  warning?: number
  alarm?: number
}

export interface Device {
  id: string
  office: string
  enterprise?: string
  enterpriseName?: string
  gateway: string
  lastSeen: string
  status?: string
  latest: Record<string, { value: number; unit: string; time: string }>
  openAlerts: number
  levels?: Record<string, Levels>
  /** Moved to another enterprise: shown as it was when it left the caller's; its history stays theirs. */
  movedAway?: boolean
}

export interface Bucket {
  time: string
  mean: number
  min: number
  max: number
  count: number
}

export interface Series {
  device: string
  office?: string
  from: string
  to: string
  quantity: string
  unit?: string
  window: '1m' | '1h' | '1d'
  buckets: Bucket[]
}

export type TourStatus = 'scheduled' | 'in_progress' | 'completed' | 'late' | 'incomplete' | 'missed'

export interface CheckpointProgress {
  checkpoint: string
  /** The checkpoint's name, when the office configures names. */
  name?: string
  scannedAt?: string
  staff?: string
  late?: boolean
}

export interface Tour {
  office: string
  route: string
  routeName: string
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

export type Link = 'up' | 'down' | 'never_seen'

export interface Gateway {
  id: string
  office: string
  officeName?: string
  link: Link
  lastSeen?: string
  secondsSinceSeen?: number
  backlog?: number
  version?: string
  batches?: number
  envelopes?: number
}

export const OPEN_STATES: readonly CaseState[] = ['raised', 'acknowledged', 'assigned']
