/** Small shared pieces: icons, badges, the modal dialog, notices, loading and error states, hooks. */
import type { ComponentChildren } from 'preact'
import { useCallback, useEffect, useRef, useState } from 'preact/hooks'
import { dismiss, notices } from './actions.ts'
import { announcement } from './live.ts'
import { severityLabel, stateLabel, useT } from './i18n.ts'
import { useStore } from './store.ts'

// ---- icons (decorative: the text next to them carries the meaning)

const PATHS = {
  critical: 'M7.9 2h8.2L22 7.9v8.2L16.1 22H7.9L2 16.1V7.9zM12 7v6M12 16.5v.5',
  major: 'M10.3 3.9 1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0zM12 9v4M12 17v.5',
  minor: 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zM12 11v5M12 7.5V8',
  check: 'M20 6 9 17l-5-5',
  clock: 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zM12 6v6l4 2',
  x: 'M18 6 6 18M6 6l12 12',
  circle: 'M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z',
  bell: 'M18 8A6 6 0 0 0 6 8c0 7-3 9-3 9h18s-3-2-3-9M13.7 21a2 2 0 0 1-3.4 0',
  bellOff: 'M13.7 21a2 2 0 0 1-3.4 0M18.6 13A17.9 17.9 0 0 1 18 8M6.3 6.3A6 6 0 0 0 6 8c0 7-3 9-3 9h14M18 8a6 6 0 0 0-9.3-5M2 2l20 20',
  logout: 'M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4M16 17l5-5-5-5M21 12H9',
  globe: 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zM2 12h20M12 2a15 15 0 0 1 4 10 15 15 0 0 1-4 10 15 15 0 0 1-4-10 15 15 0 0 1 4-10z',
  left: 'M15 18l-6-6 6-6',
  right: 'M9 18l6-6-6-6',
  refresh: 'M23 4v6h-6M1 20v-6h6M3.5 9a9 9 0 0 1 14.8-3.4L23 10M1 14l4.7 4.4A9 9 0 0 0 20.5 15',
  shield: 'M12 22s8-4 8-10V5l-8-3-8 3v7c0 6 8 10 8 10z',
  pin: 'M21 10c0 7-9 13-9 13s-9-6-9-13a9 9 0 0 1 18 0zM12 7a3 3 0 1 0 0 6 3 3 0 0 0 0-6z',
  user: 'M20 21v-2a4 4 0 0 0-4-4H8a4 4 0 0 0-4 4v2M12 3a4 4 0 1 0 0 8 4 4 0 0 0 0-8z',
  send: 'M22 2 11 13M22 2l-7 20-4-9-9-4z',
  flag: 'M4 15s1-1 4-1 5 2 8 2 4-1 4-1V3s-1 1-4 1-5-2-8-2-4 1-4 1zM4 22v-7',
} as const
export type IconName = keyof typeof PATHS

export function Icon({ name, class: cls }: { name: IconName; class?: string }) {
  return (
    <svg class={`icon ${cls ?? ''}`} viewBox="0 0 24 24" aria-hidden="true" focusable="false" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">
      <path d={PATHS[name]} />
    </svg>
  )
}

export function SeverityBadge({ severity }: { severity: string }) {
  const known = severity === 'critical' || severity === 'major' || severity === 'minor'
  return (
    <span class={`badge sev sev-${known ? severity : 'other'}`} data-severity={severity}>
      <Icon name={known ? severity : 'minor'} />
      <span>{severityLabel(severity)}</span>
    </span>
  )
}

export function StateBadge({ state, kind }: { state: string; kind?: 'alert' | 'incident' }) {
  return <span class={`badge state state-${state}`}>{stateLabel(state, kind)}</span>
}

// ---- modal dialog: native <dialog>.showModal() (the rest of the page becomes inert), with Tab
// kept inside it and Escape closing it

const FOCUSABLE = 'button:not([disabled]), [href], input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])'

export function Dialog(props: { testid: string; title: string; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null)
  const titleId = `${props.testid}-title`
  useEffect(() => {
    const d = ref.current
    if (!d) return
    if (!d.open) {
      try {
        d.showModal()
      } catch {
        d.setAttribute('open', '')
      }
    }
    const first = d.querySelector<HTMLElement>('select, textarea, input')
    first?.focus()
    return () => {
      if (d.open) d.close()
    }
  }, [])
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Escape') {
      e.preventDefault()
      props.onClose()
      return
    }
    if (e.key !== 'Tab' || !ref.current) return
    const items = [...ref.current.querySelectorAll<HTMLElement>(FOCUSABLE)].filter((el) => el.offsetParent !== null)
    if (items.length === 0) return
    const first = items[0]
    const last = items[items.length - 1]
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault()
      last.focus()
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault()
      first.focus()
    }
  }
  return (
    <dialog
      ref={ref}
      class="dialog"
      data-testid={props.testid}
      aria-labelledby={titleId}
      aria-modal="true"
      onKeyDown={onKeyDown}
      onCancel={(e) => {
        e.preventDefault()
        props.onClose()
      }}
    >
      <h2 id={titleId} class="dialog-title">
        {props.title}
      </h2>
      {props.children}
    </dialog>
  )
}

// ---- notices and announcements

export function Notices() {
  const list = useStore(notices)
  const t = useT()
  return (
    <div class="notices">
      <div aria-live="polite" class="notices-polite">
        {list
          .filter((n) => n.kind === 'ok')
          .map((n) => (
            <div key={n.id} class="notice notice-ok" data-testid="notice" data-kind="ok">
              <Icon name="check" />
              <span>{n.text}</span>
              <button type="button" class="icon-button" onClick={() => dismiss(n.id)} aria-label={t('dismiss')}>
                <Icon name="x" />
              </button>
            </div>
          ))}
      </div>
      <div role="alert" class="notices-assertive">
        {list
          .filter((n) => n.kind === 'error')
          .map((n) => (
            <div key={n.id} class="notice notice-error" data-testid="notice" data-kind="error">
              <Icon name="major" />
              <span>{n.text}</span>
              <button type="button" class="icon-button" onClick={() => dismiss(n.id)} aria-label={t('dismiss')}>
                <Icon name="x" />
              </button>
            </div>
          ))}
      </div>
    </div>
  )
}

/** The polite live region that announces new alerts. */
export function Announcer() {
  const a = useStore(announcement)
  return (
    <div class="sr-only" aria-live="polite" aria-atomic="true" data-testid="announcer">
      {a ? <span key={a.at}>{a.text}</span> : null}
    </div>
  )
}

export function Loading() {
  const t = useT()
  return (
    <p class="muted loading" role="status">
      {t('loading')}
    </p>
  )
}

export function ErrorBox({ error, retry }: { error: Error; retry?: () => void }) {
  const t = useT()
  return (
    <div class="error-box" role="alert">
      <Icon name="major" />
      <span>{t('errorLoading', { message: error.message })}</span>
      {retry ? (
        <button type="button" class="button" onClick={retry}>
          {t('retry')}
        </button>
      ) : null}
    </div>
  )
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>
}

// ---- hooks

/** The current time, updated every `ms`. */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now())
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms)
    return () => clearInterval(timer)
  }, [ms])
  return now
}

export interface Loaded<T> {
  data: T | undefined
  error: Error | undefined
  loading: boolean
  reload: () => void
}

/**
 * Loads with `fn` whenever `deps` change, and every `refreshMs` if given (quietly: the old data
 * stays while the new loads). An answer to an older request never overwrites a newer one.
 */
export function useLoad<T>(fn: (signal: AbortSignal) => Promise<T>, deps: unknown[], refreshMs?: number): Loaded<T> {
  const [state, setState] = useState<{ data: T | undefined; error: Error | undefined; loading: boolean }>({ data: undefined, error: undefined, loading: true })
  const [tick, setTick] = useState(0)
  const reload = useCallback(() => setTick((n) => n + 1), [])
  useEffect(() => {
    const ctrl = new AbortController()
    setState((s) => ({ ...s, loading: true }))
    fn(ctrl.signal).then(
      (data) => {
        if (!ctrl.signal.aborted) setState({ data, error: undefined, loading: false })
      },
      (err: unknown) => {
        if (!ctrl.signal.aborted) setState((s) => ({ data: s.data, error: err as Error, loading: false }))
      },
    )
    return () => ctrl.abort()
  }, [...deps, tick])
  useEffect(() => {
    if (!refreshMs) return
    const timer = setInterval(reload, refreshMs)
    return () => clearInterval(timer)
  }, [refreshMs, reload])
  return { ...state, reload }
}

export function VisuallyHidden({ children }: { children: ComponentChildren }) {
  return <span class="sr-only">{children}</span>
}
