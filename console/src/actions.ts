/**
 * Working a case: acknowledge, assign, resolve, close. Each action sends the version the console
 * last saw; a 409 (a colleague was first, or the state no longer allows it) shows the server's
 * message and refreshes that case.
 */
import { ApiError, api } from './api.ts'
import { stateLabel, t } from './i18n.ts'
import { refreshCase, upsert, type CaseKind } from './live.ts'
import { createStore } from './store.ts'
import type { Case, CaseAction, CaseState, Role } from './types.ts'

export interface Notice {
  id: number
  kind: 'ok' | 'error'
  text: string
}

export const notices = createStore<readonly Notice[]>([])
let noticeSeq = 0

export function notify(kind: Notice['kind'], text: string): void {
  const id = ++noticeSeq
  notices.update((list) => [...list.slice(-3), { id, kind, text }])
  setTimeout(() => dismiss(id), kind === 'ok' ? 5000 : 12000)
}

export function dismiss(id: number): void {
  notices.update((list) => list.filter((n) => n.id !== id))
}

const FROM: Record<CaseAction, readonly CaseState[]> = {
  acknowledge: ['raised'],
  assign: ['acknowledged', 'assigned'],
  resolve: ['acknowledged', 'assigned'],
  close: ['resolved'],
}

/** Whether this user may take this action on this case now (only center staff work cases). */
export function allowed(role: Role | undefined, c: Case, action: CaseAction, mayAct = true): boolean {
  return role === 'center' && mayAct && FROM[action].includes(c.state)
}

export interface PendingAction {
  kind: CaseKind
  item: Case
  action: 'assign' | 'resolve'
  /** The element to give focus back to when the dialog closes. */
  opener: HTMLElement | null
  /** Called after the action succeeded. */
  done?: (c: Case) => void
}

/** The assign or resolve dialog that is open, if any. */
export const pending = createStore<PendingAction | undefined>(undefined)

/** Actions in flight, by case id, so their buttons can show it. */
export const busy = createStore<ReadonlySet<string>>(new Set())

function setBusy(id: string, on: boolean) {
  busy.update((s) => {
    const next = new Set(s)
    if (on) next.add(id)
    else next.delete(id)
    return next
  })
}

/** The case after the action; 'conflict' when the server refused it with 409 (the case is refreshed); undefined on other failures. */
export async function act(kind: CaseKind, item: Case, action: CaseAction, input: { note?: string; department?: string } = {}): Promise<Case | 'conflict' | undefined> {
  setBusy(item.id, true)
  try {
    const body = {
      ...(input.note?.trim() ? { note: input.note.trim() } : {}),
      ...(input.department ? { department: input.department } : {}),
      version: item.version,
    }
    const res = await api<{ alert?: Case; incident?: Case }>('POST', `/v1/${kind}s/${encodeURIComponent(item.id)}/${action}`, body)
    const c = kind === 'alert' ? res.alert : res.incident
    if (c) upsert(kind, c)
    notify('ok', t('actionDone', { what: item.device, state: stateLabel((c ?? item).state, kind) }))
    return c
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) {
      notify('error', t('actionConflict', { message: err.message }))
      await refreshCase(kind, item.id).catch(() => undefined)
      return 'conflict'
    } else if (err instanceof ApiError && err.status !== 401) {
      notify('error', t('actionFailed', { message: err.message }))
      if (err.status === 404) await refreshCase(kind, item.id).catch(() => undefined)
    }
    return undefined
  } finally {
    setBusy(item.id, false)
  }
}
