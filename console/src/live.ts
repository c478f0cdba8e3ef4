/**
 * The alerts and incidents the console knows, kept current by the live stream (SSE).
 *
 * Lists are loaded with GET /v1/alerts and /v1/incidents and merged here; every `alert_update`
 * or `incident_update` event carries the whole case and is upserted by id (a newer version always
 * wins, so a list answer that raced an event cannot roll it back). EventSource reconnects by
 * itself with Last-Event-ID; when the server says the replay was truncated, lists are reloaded.
 */
import { api, endSession, qs, session } from './api.ts'
import { beep } from './sound.ts'
import { createStore } from './store.ts'
import { severityLabel, stateLabel, t, typeLabel } from './i18n.ts'
import type { Case, CaseState } from './types.ts'
import { OPEN_STATES } from './types.ts'

export type LiveState = 'open' | 'connecting' | 'closed'
export type CaseKind = 'alert' | 'incident'

export const alerts = createStore<ReadonlyMap<string, Case>>(new Map())
export const incidents = createStore<ReadonlyMap<string, Case>>(new Map())
export const liveState = createStore<LiveState>('closed')
/** Bumped when lists must be reloaded (the stream could not replay everything missed). */
export const reloadTick = createStore(0)
/** The latest polite announcement for screen readers. */
export const announcement = createStore<{ text: string; at: number } | undefined>(undefined)

const stores: Record<CaseKind, typeof alerts> = { alert: alerts, incident: incidents }
/** When each case was last written here, to tell a list answer's omissions from fresher news. */
const received = new Map<string, number>()

export function caseStore(kind: CaseKind) {
  return stores[kind]
}

/** Upserts one case; returns the case it replaced (undefined when new), or false when it was older. */
export function upsert(kind: CaseKind, c: Case): Case | undefined | false {
  const store = stores[kind]
  const existing = store.get().get(c.id)
  if (existing && existing.version > c.version) return false
  const next = new Map(store.get())
  next.set(c.id, c)
  received.set(c.id, Date.now())
  store.set(next)
  return existing
}

export interface ListFilter {
  state?: string
  severity?: string
  office?: string
  type?: string
}

export function statesOf(state: string | undefined): readonly CaseState[] | undefined {
  if (!state) return undefined
  return state.split(',').flatMap((s) => (s === 'open' ? OPEN_STATES : [s as CaseState]))
}

export function matches(c: Case, f: ListFilter): boolean {
  const states = statesOf(f.state)
  if (states && !states.includes(c.state)) return false
  if (f.severity && c.severity !== f.severity) return false
  if (f.office && c.office !== f.office) return false
  if (f.type && !c.type.toLowerCase().includes(f.type.trim().toLowerCase())) return false
  return true
}

/**
 * Loads a list and merges it: cases matching the filter that the answer no longer holds (and
 * that no event has refreshed since the request started) are dropped, when the answer is complete.
 */
export async function loadCases(kind: CaseKind, filter: ListFilter, limit = 200, signal?: AbortSignal): Promise<{ total: number; count: number }> {
  const started = Date.now()
  const body = await api<{ total: number; alerts?: Case[]; incidents?: Case[] }>(
    'GET',
    `/v1/${kind}s${qs({ state: filter.state, severity: filter.severity, office: filter.office, limit })}`,
    undefined,
    { signal },
  )
  const items = (kind === 'alert' ? body.alerts : body.incidents) ?? []
  const store = stores[kind]
  const next = new Map(store.get())
  const serverFilter = { ...filter, type: undefined }
  const complete = body.total <= items.length
  if (complete) {
    const present = new Set(items.map((c) => c.id))
    for (const [id, c] of next) {
      if (!present.has(id) && matches(c, serverFilter) && (received.get(id) ?? 0) < started) next.delete(id)
    }
  }
  for (const c of items) {
    const existing = next.get(c.id)
    if (existing && existing.version > c.version) continue
    next.set(c.id, c)
    received.set(c.id, Math.max(received.get(c.id) ?? 0, started))
  }
  store.set(next)
  return { total: body.total, count: items.length }
}

export async function refreshCase(kind: CaseKind, id: string): Promise<Case | undefined> {
  const body = await api<{ alert?: Case; incident?: Case }>('GET', `/v1/${kind}s/${encodeURIComponent(id)}`)
  const c = kind === 'alert' ? body.alert : body.incident
  if (c) upsert(kind, c)
  return c
}

export function announce(text: string): void {
  announcement.set({ text, at: Date.now() })
}

// ---- the stream

let source: EventSource | undefined
let retryTimer: ReturnType<typeof setTimeout> | undefined
let lastEventId: string | undefined
let stopped = true

function onCaseEvent(kind: CaseKind, e: MessageEvent<unknown>) {
  if (e.lastEventId) lastEventId = e.lastEventId
  let c: Case
  try {
    c = JSON.parse(String(e.data)) as Case
  } catch {
    return
  }
  const before = upsert(kind, c)
  if (before === false) return
  if (kind !== 'alert') return
  // New means the version a gateway raised, not an older alert this console had not loaded yet
  // (a replay after reconnecting, a reload on another page): those must not sound again.
  const isNew = before === undefined && c.version === 1 && c.state === 'raised'
  const becameCritical = before !== undefined && before.severity !== 'critical' && c.severity === 'critical' && c.state === 'raised'
  if (isNew || becameCritical) {
    if (c.severity === 'critical') beep()
    announce(t('newAlert', { severity: severityLabel(c.severity), type: typeLabel(c.type), device: c.device, message: c.detail.message ?? '' }))
  } else if (before && before.state !== c.state) {
    announce(t('alertUpdated', { device: c.device, state: stateLabel(c.state) }))
  }
}

function connect() {
  const token = session.get()?.token
  if (!token || stopped) return
  liveState.set('connecting')
  let url = `/v1/stream?kinds=alert_update,incident_update&access_token=${encodeURIComponent(token)}`
  // A stream made anew (not EventSource's own reconnect) asks for what it missed explicitly.
  if (lastEventId) url += `&lastEventId=${encodeURIComponent(lastEventId)}`
  const es = new EventSource(url)
  source = es
  es.onopen = () => {
    if (source !== es) return
    liveState.set('open')
    // Without an event id to resume from, nothing is replayed: what changed between loading the
    // lists and this moment is only caught by loading them again.
    if (!lastEventId) reloadTick.update((n) => n + 1)
  }
  es.onerror = () => {
    if (source !== es) return
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (an HTTP error, e.g. 401 or 503): find out whether the session is
      // still good, then try again ourselves.
      liveState.set('closed')
      es.close()
      source = undefined
      scheduleRetry()
    } else {
      liveState.set('connecting')
    }
  }
  es.addEventListener('alert_update', (e) => onCaseEvent('alert', e))
  es.addEventListener('incident_update', (e) => onCaseEvent('incident', e))
  es.addEventListener('replay_truncated', (e) => {
    // The notice's id is where a reconnect should start (past what the reload covers); without
    // it, a reconnect of our own would send the stale id and be told the same again.
    if (e.lastEventId) lastEventId = e.lastEventId
    // What this console holds may be stale in ways a partial replay cannot repair: start over.
    alerts.set(new Map())
    incidents.set(new Map())
    received.clear()
    reloadTick.update((n) => n + 1)
  })
}

function scheduleRetry() {
  if (stopped || retryTimer) return
  retryTimer = setTimeout(() => {
    retryTimer = undefined
    if (stopped) return
    api('GET', '/v1/me').then(
      () => connect(),
      (err: unknown) => {
        const status = (err as { status?: number }).status
        if (status === 401) endSession(t('sessionExpired'))
        else scheduleRetry()
      },
    )
  }, 3000)
}

export function startLive(): void {
  stopLive()
  stopped = false
  connect()
}

export function stopLive(): void {
  stopped = true
  if (retryTimer) clearTimeout(retryTimer)
  retryTimer = undefined
  source?.close()
  source = undefined
  liveState.set('closed')
}

/** Forget everything (on sign-out): the next user must not see the last one's cases. */
export function resetCases(): void {
  alerts.set(new Map())
  incidents.set(new Map())
  received.clear()
  lastEventId = undefined
}
