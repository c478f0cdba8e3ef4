/** The patrol board: a day's tours checkpoint by checkpoint, and the incidents patrol staff reported. */
import { useEffect, useMemo, useState } from 'preact/hooks'
import { api, me, qs } from './api.ts'
import { History } from './AlertDetail.tsx'
import { departmentName } from './Alerts.tsx'
import { CaseActions } from './CaseActions.tsx'
import { ago, formatDateTime, formatTime, levelLabel, localDay, tourStatusLabel, typeLabel, useT } from './i18n.ts'
import { incidents, loadCases, reloadTick } from './live.ts'
import { href, navigate } from './router.ts'
import { useStore } from './store.ts'
import type { Case, CheckpointProgress, Role, Tour, Transition } from './types.ts'
import { OPEN_STATES } from './types.ts'
import { Empty, ErrorBox, Icon, Loading, SeverityBadge, StateBadge, useLoad, useNow, type IconName } from './ui.tsx'

type CheckpointState = 'scanned' | 'late' | 'missed' | 'pending'

function checkpointState(tour: Tour, cp: CheckpointProgress): CheckpointState {
  if (tour.missed.includes(cp.checkpoint)) return 'missed'
  if (cp.late) return 'late'
  if (cp.scannedAt) return 'scanned'
  return 'pending'
}

const CP_ICON: Record<CheckpointState, IconName> = { scanned: 'check', late: 'clock', missed: 'x', pending: 'circle' }
const STATUS_ICON: Record<string, IconName> = { scheduled: 'clock', in_progress: 'right', completed: 'check', late: 'clock', incomplete: 'major', missed: 'x' }

/** Calendar arithmetic on a YYYY-MM-DD, independent of any zone. */
function shiftDay(day: string, by: number): string {
  const d = new Date(`${day}T00:00:00Z`)
  d.setUTCDate(d.getUTCDate() + by)
  return d.toISOString().slice(0, 10)
}

export function PatrolBoard({ day, role }: { day?: string; role: Role | undefined }) {
  const t = useT()
  const today = localDay()
  const loaded = useLoad((signal) => api<{ tours: Tour[] }>('GET', `/v1/patrol/tours${qs({ day })}`, undefined, { signal }), [day], day === undefined || day === today ? 60_000 : undefined)
  const tours = loaded.data?.tours
  const shown = day ?? tours?.[0]?.day ?? today
  const offices = useMemo(() => [...new Set((tours ?? []).map((x) => x.office))], [tours])
  const officeNames = useStore(me)?.officeNames

  return (
    <section class="view patrol-view" data-testid="patrol-board" aria-labelledby="patrol-title">
      <div class="view-head">
        <h1 id="patrol-title" tabIndex={-1}>
          {t('patrol')}
        </h1>
        <div class="day-picker">
          <button type="button" class="icon-button bordered" aria-label={t('previousDay')} onClick={() => navigate(href.patrol(shiftDay(shown, -1)))}>
            <Icon name="left" />
          </button>
          <label for="patrol-day" class="sr-only">
            {t('day')}
          </label>
          <input
            id="patrol-day"
            type="date"
            name="day"
            value={shown}
            onChange={(e) => {
              const v = e.currentTarget.value
              if (/^\d{4}-\d{2}-\d{2}$/.test(v)) navigate(href.patrol(v))
            }}
          />
          <button type="button" class="icon-button bordered" aria-label={t('nextDay')} onClick={() => navigate(href.patrol(shiftDay(shown, 1)))}>
            <Icon name="right" />
          </button>
          {shown !== today ? (
            <button type="button" class="button ghost small" onClick={() => navigate(href.patrol(today))}>
              {t('today')}
            </button>
          ) : null}
        </div>
      </div>

      <section class="tours" aria-labelledby="tours-title" aria-busy={loaded.loading}>
        <h2 id="tours-title" class="section-title">
          {t('tours')}
        </h2>
        {loaded.error ? <ErrorBox error={loaded.error} retry={loaded.reload} /> : null}
        {!tours && !loaded.error ? <Loading /> : null}
        {tours && tours.length === 0 ? <Empty>{t('noTours')}</Empty> : null}
        {offices.map((office) => (
          <div key={office} class="office-tours">
            {offices.length > 1 ? <h3 class="group-title">{officeNames?.[office] ?? office}</h3> : null}
            <ul class="tour-list">
              {(tours ?? [])
                .filter((x) => x.office === office)
                .map((tour) => (
                  <TourCard key={`${tour.route}@${tour.start}`} tour={tour} nested={offices.length > 1} />
                ))}
            </ul>
          </div>
        ))}
      </section>

      <Incidents role={role} />
    </section>
  )
}

function TourCard({ tour, nested }: { tour: Tour; nested: boolean }) {
  const Heading = nested ? 'h4' : 'h3'
  const t = useT()
  const total = tour.checkpoints.length
  const pct = total === 0 ? 0 : Math.round((tour.scanned / total) * 100)
  return (
    <li class={`tour tour-${tour.status}`} data-testid="tour" data-route={tour.route} data-status={tour.status} aria-labelledby={`tour-${tour.route}-${tour.start}`}>
      <div class="tour-head">
        <Heading id={`tour-${tour.route}-${tour.start}`} class="tour-title">
          {tour.routeName}
          <span class="muted"> {tour.route}</span>
        </Heading>
        <span class="tour-window">
          <Icon name="clock" />
          {formatTime(tour.start)}–{formatTime(tour.end)}
        </span>
        <span class={`badge tour-status status-${tour.status}`}>
          <Icon name={STATUS_ICON[tour.status] ?? 'circle'} />
          {tourStatusLabel(tour.status)}
        </span>
      </div>
      <div class="tour-progress">
        <div class="bar" aria-hidden="true">
          <span style={{ width: `${pct}%` }} />
        </div>
        <span>{t('progress', { scanned: tour.scanned, total })}</span>
      </div>
      <div class="tour-staff muted">
        <span>
          <Icon name="user" />
          {t('assignedStaff')}: {tour.assignedStaff.join(', ') || t('none')}
        </span>
        {tour.staff.length > 0 ? (
          <span>
            {t('walkedBy')}: {tour.staff.join(', ')}
          </span>
        ) : null}
      </div>
      <ol class="checkpoints">
        {tour.checkpoints.map((cp, i) => {
          const state = checkpointState(tour, cp)
          const label = state === 'scanned' ? t('cpScanned') : state === 'late' ? t('cpLate') : state === 'missed' ? t('cpMissed') : t('cpPending')
          return (
            <li key={cp.checkpoint} class={`checkpoint cp-${state}`} data-testid="checkpoint" data-checkpoint={cp.checkpoint} data-state={state}>
              <span class="cp-marker" aria-hidden="true">
                <Icon name={CP_ICON[state]} />
              </span>
              <span class="cp-body">
                <span class="cp-name">
                  <span class="cp-index" aria-hidden="true">
                    {i + 1}
                  </span>
                  {cp.name ?? cp.checkpoint}
                </span>
                {cp.name ? <span class="cp-id muted">{cp.checkpoint}</span> : null}
                <span class="cp-state">{label}</span>
                {cp.scannedAt ? (
                  <span class="cp-time muted">
                    <time dateTime={cp.scannedAt}>{formatTime(cp.scannedAt)}</time>
                    {cp.staff ? ` · ${cp.staff}` : ''}
                  </span>
                ) : null}
              </span>
            </li>
          )
        })}
      </ol>
    </li>
  )
}

function Incidents({ role }: { role: Role | undefined }) {
  const t = useT()
  const all = useStore(incidents)
  const reload = useStore(reloadTick)
  const [error, setError] = useState<Error | undefined>()
  const [loading, setLoading] = useState(true)
  const [attempt, setAttempt] = useState(0)
  const now = useNow(10_000)
  useEffect(() => {
    const ctrl = new AbortController()
    setLoading(true)
    // Open ones (all of them, up to 200), and the most recent of any state.
    Promise.all([loadCases('incident', { state: 'open' }, 200, ctrl.signal), loadCases('incident', {}, 50, ctrl.signal)]).then(
      () => {
        if (ctrl.signal.aborted) return
        setError(undefined)
        setLoading(false)
      },
      (err: unknown) => {
        if (ctrl.signal.aborted) return
        setError(err as Error)
        setLoading(false)
      },
    )
    return () => ctrl.abort()
  }, [reload, attempt])
  const shown = useMemo(() => {
    const list = [...all.values()].sort((a, b) => (a.raisedAt < b.raisedAt ? 1 : -1))
    const open = list.filter((c) => OPEN_STATES.includes(c.state))
    const other = list.filter((c) => !OPEN_STATES.includes(c.state)).slice(0, 20)
    return [...open, ...other]
  }, [all])
  return (
    <section class="incidents" data-testid="incidents" aria-labelledby="incidents-title" aria-busy={loading}>
      <h2 id="incidents-title" class="section-title">
        {t('incidents')}
      </h2>
      {error ? <ErrorBox error={error} retry={() => setAttempt((n) => n + 1)} /> : null}
      {loading && shown.length === 0 ? <Loading /> : null}
      {!loading && shown.length === 0 ? <Empty>{t('noIncidents')}</Empty> : null}
      <ul class="incident-list">
        {shown.map((c) => (
          <IncidentRow key={c.id} item={c} role={role} now={now} />
        ))}
      </ul>
    </section>
  )
}

function IncidentRow({ item: c, role, now }: { item: Case; role: Role | undefined; now: number }) {
  const t = useT()
  const officeNames = useStore(me)?.officeNames
  const departments = useStore(me)?.departments
  const [history, setHistory] = useState<Transition[] | undefined>()
  const [expanded, setExpanded] = useState(false)
  const d = c.detail
  const historyId = `inc-history-${c.id.replace(/[^A-Za-z0-9_-]/g, '_')}`
  const loadHistory = () =>
    api<{ history: Transition[] }>('GET', `/v1/incidents/${encodeURIComponent(c.id)}`).then(
      (r) => setHistory(r.history),
      () => setHistory([]),
    )
  useEffect(() => {
    if (expanded) void loadHistory()
    // The history grows with each change of the incident.
  }, [expanded, c.version])
  return (
    <li class={`incident-row sev-row-${c.severity} ${OPEN_STATES.includes(c.state) ? 'is-open' : 'is-done'}`} data-testid="incident-row" data-incident-id={c.id} data-state={c.state}>
      <div class="incident-main">
        <div class="incident-title">
          <SeverityBadge severity={c.severity} />
          <strong>{typeLabel(c.type)}</strong>
          <StateBadge state={c.state} kind="incident" />
          {c.state === 'assigned' && c.assignedTo ? <span class="muted">{departmentName(departments, c.assignedTo)}</span> : null}
        </div>
        {d.description ? <p class="incident-description">{d.description}</p> : null}
        <div class="incident-meta muted">
          <span>
            <time dateTime={c.raisedAt}>{formatDateTime(c.raisedAt)}</time> ({ago(c.raisedAt, now)})
          </span>
          {d.reporter ? (
            <span>
              <Icon name="user" />
              {t('reporter')}: {d.reporter}
            </span>
          ) : null}
          <span>
            {t('device')}: {c.device} · {officeNames?.[c.office] ?? c.office}
          </span>
          <span>
            {t('level')}: {levelLabel(c.level)}
            {c.escalations > 0 ? ` · ${t('escalatedTimes', { n: c.escalations })}` : ''}
          </span>
          {d.location ? (
            <span>
              <Icon name="pin" />
              {t('location')}: {d.location.lat.toFixed(5)}, {d.location.lon.toFixed(5)}
            </span>
          ) : null}
          {d.photo ? (
            <span>
              {t('photo')}: {d.photo}
            </span>
          ) : null}
        </div>
      </div>
      <div class="incident-side">
        <CaseActions kind="incident" item={c} role={role} />
        <button type="button" class="button ghost small" aria-expanded={expanded} aria-controls={historyId} onClick={() => setExpanded((x) => !x)}>
          {expanded ? t('hideHistory') : t('showHistory')}
        </button>
      </div>
      {expanded ? (
        <div id={historyId} class="incident-history">
          {history ? <History items={history} /> : <Loading />}
        </div>
      ) : null}
    </li>
  )
}
