/** The console: sign-in, or the header, the section the route and role allow, and the live stream. */
import { useEffect, useRef, useState } from 'preact/hooks'
import { ApiError, endSession, loadMe, me, session, signOut } from './api.ts'
import { ActionDialog } from './CaseActions.tsx'
import { AlertDetail } from './AlertDetail.tsx'
import { AlertQueue, alertFilter } from './Alerts.tsx'
import { busy, notices, pending } from './actions.ts'
import { Gateways } from './Gateways.tsx'
import { lang, roleLabel, t, useT } from './i18n.ts'
import { alerts, liveState, resetCases, startLive, stopLive } from './live.ts'
import { PatrolBoard } from './Patrol.tsx'
import { href, navigate, route, sectionOf, type Route, type Section } from './router.ts'
import { SensorView } from './Sensors.tsx'
import { SignIn } from './SignIn.tsx'
import { beeps, muted } from './sound.ts'
import { useStore } from './store.ts'
import type { Role } from './types.ts'
import { Announcer, ErrorBox, Icon, Loading, Notices } from './ui.tsx'

const SECTIONS: Record<Role, readonly Section[]> = {
  admin: ['alerts', 'sensors', 'patrol', 'gateways'],
  center: ['alerts', 'sensors', 'patrol', 'gateways'],
  inspector: ['alerts', 'sensors'],
  supervisor: ['alerts', 'patrol'],
}

export function sectionsFor(role: Role | undefined): readonly Section[] {
  return role ? (SECTIONS[role] ?? ['alerts']) : ['alerts']
}

export function App() {
  useStore(lang) // every label follows the language
  const s = useStore(session)
  const m = useStore(me)
  const [error, setError] = useState<Error | undefined>()
  const [attempt, setAttempt] = useState(0)

  useEffect(() => {
    if (!s || m) return
    setError(undefined)
    loadMe().catch((err: unknown) => {
      if (err instanceof ApiError && err.status === 401) return // back to sign-in already
      setError(err as Error)
    })
  }, [s?.token, m, attempt])

  useEffect(() => {
    if (!s || !m) return
    startLive()
    return () => stopLive()
  }, [s?.token, m !== undefined])

  useEffect(() => {
    if (!s) {
      // Nothing of the last user's session may reach the next: cases, an open dialog, notices, filters.
      resetCases()
      pending.set(undefined)
      busy.set(new Set())
      notices.set([])
      alertFilter.set({ state: 'open', severity: '', office: '', type: '' })
      return
    }
    // The session ends at expiresAt whether or not a request notices.
    const left = Date.parse(s.expiresAt) - Date.now()
    const timer = setTimeout(() => endSession(t('sessionExpired')), Math.min(Math.max(left, 0), 2 ** 31 - 1))
    return () => clearTimeout(timer)
  }, [s?.token])

  if (!s) return <SignIn />
  if (!m) {
    return (
      <div class="splash">
        {error ? (
          <ErrorBox
            error={error}
            retry={() => {
              setAttempt((n) => n + 1)
            }}
          />
        ) : (
          <Loading />
        )}
        {error ? (
          <button type="button" class="button" onClick={() => endSession()}>
            {t('signInAgain')}
          </button>
        ) : null}
      </div>
    )
  }
  return <Shell role={m.role} />
}

function Shell({ role }: { role: Role }) {
  const r = useStore(route)
  const allowed = sectionsFor(role)
  const section = sectionOf(r)
  const ok = section !== undefined && allowed.includes(section)
  useEffect(() => {
    if (!ok) navigate(href.alerts(), true)
  }, [ok])

  // Moving between sections puts focus on the new section's heading (not on the first render, and
  // not within a section, where it would lose the user's place in a list).
  const previous = useRef<Section | undefined>(undefined)
  useEffect(() => {
    if (previous.current !== undefined && section !== previous.current) {
      document.querySelector<HTMLElement>('main h1')?.focus()
    }
    previous.current = section
  }, [section])

  return (
    <div class="shell">
      <Header role={role} section={section} allowed={allowed} />
      <main id="main" class="main" tabIndex={-1}>
        {ok ? <View route={r} role={role} /> : null}
      </main>
      <Notices />
      <Announcer />
      <ActionDialog />
    </div>
  )
}

function View({ route: r, role }: { route: Route; role: Role }) {
  switch (r.name) {
    case 'alerts':
      return <AlertQueue role={role} />
    case 'alert':
      return <AlertDetail key={r.id} id={r.id} role={role} />
    case 'sensors':
      return <SensorView office={r.office} device={r.device} quantity={r.quantity} range={r.range} />
    case 'patrol':
      return <PatrolBoard day={r.day} role={role} />
    case 'gateways':
      return <Gateways />
    default:
      return null
  }
}

function Header({ role, section, allowed }: { role: Role; section: Section | undefined; allowed: readonly Section[] }) {
  const t = useT()
  const l = useStore(lang)
  const user = useStore(session)?.user
  const isMuted = useStore(muted)
  const beepCount = useStore(beeps)
  const critical = [...useStore(alerts).values()].filter((a) => a.severity === 'critical' && a.state === 'raised').length
  const nav: { id: Section; label: string; to: string }[] = [
    { id: 'alerts' as const, label: t('navAlerts'), to: href.alerts() },
    { id: 'sensors' as const, label: t('navSensors'), to: href.sensors() },
    { id: 'patrol' as const, label: t('navPatrol'), to: href.patrol() },
    { id: 'gateways' as const, label: t('navGateways'), to: href.gateways() },
  ].filter((n) => allowed.includes(n.id))
  return (
    <header class="topbar">
      <a
        class="skip-link"
        href="#main"
        onClick={(e) => {
          e.preventDefault()
          document.getElementById('main')?.focus()
        }}
      >
        {t('skipToContent')}
      </a>
      <div class="topbar-row">
        <a class="brand" href={href.alerts()}>
          <span class="logo" aria-hidden="true">
            <Icon name="shield" />
          </span>
          <span class="brand-name">{t('appName')}</span>
        </a>
        <nav class="nav" aria-label={t('mainNav')}>
          {nav.map((n) => (
            <a key={n.id} href={n.to} data-testid={`nav-${n.id}`} class="nav-link" aria-current={section === n.id ? 'page' : undefined}>
              {n.label}
              {n.id === 'alerts' && critical > 0 ? (
                <>
                  <span class="nav-count" aria-hidden="true">
                    {critical}
                  </span>
                  <span class="sr-only">{t('criticalWaiting', { n: critical })}</span>
                </>
              ) : null}
            </a>
          ))}
        </nav>
        <div class="tools">
          <LiveStatus />
          <button
            type="button"
            class="tool"
            data-testid="mute-toggle"
            data-beeps={beepCount}
            aria-pressed={isMuted}
            title={isMuted ? t('muteOn') : t('muteOff')}
            onClick={() => muted.set(!isMuted)}
          >
            <Icon name={isMuted ? 'bellOff' : 'bell'} />
            <span class="tool-text">{t('mute')}</span>
          </button>
          <button type="button" class="tool" data-testid="lang-toggle" title={t('langToggleLabel')} lang={l === 'zh' ? 'en' : 'zh-CN'} onClick={() => lang.set(l === 'zh' ? 'en' : 'zh')}>
            <Icon name="globe" />
            <span>{t('langToggle')}</span>
          </button>
          <span class="user" title={user ? t('signedInAs', { name: user.name, role: roleLabel(role) }) : undefined}>
            <Icon name="user" />
            <span class="user-name">{user?.name}</span>
            <span class="user-role">{roleLabel(role)}</span>
          </span>
          <button type="button" class="tool" data-testid="sign-out" onClick={() => void signOut()}>
            <Icon name="logout" />
            <span class="tool-text">{t('signOut')}</span>
          </button>
        </div>
      </div>
    </header>
  )
}

function LiveStatus() {
  const t = useT()
  const state = useStore(liveState)
  const text = state === 'open' ? t('liveOpen') : state === 'connecting' ? t('liveConnecting') : t('liveClosed')
  return (
    <span class={`live live-${state}`} data-testid="live-status" data-state={state} role="status" title={t('liveLabel', { state: text })}>
      <span class="live-dot" aria-hidden="true" />
      <span class="live-text">{text}</span>
    </span>
  )
}
