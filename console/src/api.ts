/**
 * Talking to the center API: the session token (kept in sessionStorage, sent as a Bearer token),
 * errors in the API's one shape, and "a 401 anywhere sends you back to sign-in".
 */
import { createStore } from './store.ts'
import { setOfficeZone, t } from './i18n.ts'
import type { Me, Session } from './types.ts'

const SESSION_KEY = 'gridwatch.console.session'

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

function loadSession(): Session | undefined {
  try {
    const raw = sessionStorage.getItem(SESSION_KEY)
    if (!raw) return undefined
    const s = JSON.parse(raw) as Session
    if (typeof s.token !== 'string' || Date.parse(s.expiresAt) <= Date.now()) return undefined
    return s
  } catch {
    return undefined
  }
}

export const session = createStore<Session | undefined>(loadSession())
export const me = createStore<Me | undefined>(undefined)
/** Why the sign-in form is showing, when it is not the first visit. */
export const signInNotice = createStore<string | undefined>(undefined)

session.subscribe((s) => {
  try {
    if (s) sessionStorage.setItem(SESSION_KEY, JSON.stringify(s))
    else sessionStorage.removeItem(SESSION_KEY)
  } catch {
    // kept in memory only
  }
})

/** Forget the session here (the server has already ended it, or will). */
export function endSession(notice?: string): void {
  signInNotice.set(notice)
  me.set(undefined)
  session.set(undefined)
}

export async function api<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, options: { signal?: AbortSignal } = {}): Promise<T> {
  const token = session.get()?.token
  const headers: Record<string, string> = { accept: 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  let res: Response
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: options.signal })
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err
    throw new ApiError(0, 'NETWORK', t('networkError'))
  }
  if (res.status === 204) return undefined as T
  const text = await res.text()
  let data: unknown
  try {
    data = text ? JSON.parse(text) : undefined
  } catch {
    data = undefined
  }
  if (!res.ok) {
    const e = (data ?? {}) as { code?: string; message?: string; error?: string }
    // A 401 anywhere (except a failed sign-in itself) means the session is over.
    if (res.status === 401 && token && path !== '/v1/session') endSession(t('sessionExpired'))
    throw new ApiError(res.status, e.code ?? `HTTP_${res.status}`, e.message ?? e.error ?? `HTTP ${res.status}`)
  }
  return data as T
}

export async function signIn(name: string, password: string): Promise<void> {
  const s = await api<Session>('POST', '/v1/session', { name, password })
  session.set(s)
  signInNotice.set(undefined)
  await loadMe()
}

export async function loadMe(): Promise<Me> {
  const m = await api<Me>('GET', '/v1/me')
  // Times are shown on the offices' clock, not the browser's.
  setOfficeZone(m.utcOffsetMinutes)
  me.set(m)
  return m
}

export async function signOut(): Promise<void> {
  try {
    await api('DELETE', '/v1/session')
  } catch {
    // the session ends here regardless
  }
  endSession()
}

/** Query string from the defined values. */
export function qs(params: Record<string, string | number | undefined>): string {
  const p = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') p.set(k, String(v))
  const s = p.toString()
  return s ? `?${s}` : ''
}
