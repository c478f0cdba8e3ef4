/** The live alert queue: summary by severity, filters, and one row (a card on a phone) per alert. */
import { useEffect, useMemo, useState } from 'preact/hooks'
import { me } from './api.ts'
import { CaseActions } from './CaseActions.tsx'
import { ago, duration, formatDateTime, knownTypes, levelLabel, severityLabel, stateLabel, typeLabel, useT } from './i18n.ts'
import { alerts, loadCases, matches, reloadTick, type ListFilter } from './live.ts'
import { href } from './router.ts'
import { createStore, useStore } from './store.ts'
import type { Case, Department, Role } from './types.ts'
import { OPEN_STATES } from './types.ts'
import { Empty, ErrorBox, Icon, SeverityBadge, StateBadge, useNow } from './ui.tsx'

const SEVERITY_ORDER = ['critical', 'major', 'minor'] as const
const STATES = ['open', 'raised', 'acknowledged', 'assigned', 'resolved', 'closed', ''] as const

/** Filters survive leaving the queue for a detail view and coming back. */
export const alertFilter = createStore<Required<ListFilter>>({ state: 'open', severity: '', office: '', type: '' })

export function departmentName(departments: readonly Department[] | undefined, id: string | undefined): string {
  if (!id) return ''
  return departments?.find((d) => d.id === id)?.name ?? id
}

export function AlertQueue({ role }: { role: Role | undefined }) {
  const t = useT()
  const filter = useStore(alertFilter)
  const all = useStore(alerts)
  const reload = useStore(reloadTick)
  const user = useStore(me)
  const now = useNow(1000)
  const [error, setError] = useState<Error | undefined>()
  const [loading, setLoading] = useState(true)
  const [attempt, setAttempt] = useState(0)

  // The server filters by state, severity and office; the type filter is a substring match here.
  useEffect(() => {
    const ctrl = new AbortController()
    setLoading(true)
    loadCases('alert', { state: filter.state || undefined, severity: filter.severity || undefined, office: filter.office || undefined }, 200, ctrl.signal).then(
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
  }, [filter.state, filter.severity, filter.office, reload, attempt])

  const shown = useMemo(
    () =>
      [...all.values()]
        .filter((c) => matches(c, filter))
        .sort((a, b) => (a.raisedAt < b.raisedAt ? 1 : a.raisedAt > b.raisedAt ? -1 : a.id < b.id ? 1 : -1)),
    [all, filter],
  )
  const open = useMemo(() => [...all.values()].filter((c) => OPEN_STATES.includes(c.state)), [all])
  const set = (patch: Partial<ListFilter>) => alertFilter.update((f) => ({ ...f, ...patch }))
  const filtered = filter.state !== 'open' || filter.severity !== '' || filter.office !== '' || filter.type !== ''
  const offices = user?.offices ?? []

  return (
    <section class="view alerts-view" aria-labelledby="alerts-title">
      <div class="view-head">
        <h1 id="alerts-title" tabIndex={-1}>
          {t('alertQueue')}
        </h1>
      </div>

      <section class="summary" aria-label={t('openSummary')}>
        {SEVERITY_ORDER.map((s) => {
          const n = open.filter((c) => c.severity === s).length
          const label = s === 'critical' ? t('openCritical') : s === 'major' ? t('openMajor') : t('openMinor')
          return (
            <button
              type="button"
              key={s}
              class={`tile tile-${s} ${n > 0 ? 'has' : ''}`}
              aria-pressed={filter.severity === s && filter.state === 'open'}
              onClick={() => set(filter.severity === s ? { severity: '' } : { severity: s, state: 'open' })}
            >
              <span class="tile-label">
                <Icon name={s} />
                {label}
              </span>
              <span class="tile-value">{n}</span>
            </button>
          )
        })}
        <div class="tile tile-unacked">
          <span class="tile-label">
            <Icon name="clock" />
            {t('openUnacked')}
          </span>
          <span class="tile-value">{open.filter((c) => c.state === 'raised').length}</span>
        </div>
      </section>

      <form class="filters" data-testid="alert-filters" aria-label={t('filters')} onSubmit={(e) => e.preventDefault()}>
        <div class="field">
          <label for="f-office">{t('office')}</label>
          <select id="f-office" name="office" value={filter.office} onChange={(e) => set({ office: e.currentTarget.value })}>
            <option value="">{t('all')}</option>
            {offices.map((o) => (
              <option key={o} value={o}>
                {user?.officeNames?.[o] ?? o}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="f-severity">{t('severity')}</label>
          <select id="f-severity" name="severity" value={filter.severity} onChange={(e) => set({ severity: e.currentTarget.value })}>
            <option value="">{t('all')}</option>
            {SEVERITY_ORDER.map((s) => (
              <option key={s} value={s}>
                {severityLabel(s)}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="f-state">{t('state')}</label>
          <select id="f-state" name="state" value={filter.state} onChange={(e) => set({ state: e.currentTarget.value })}>
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s === 'open' ? t('stateOpen') : s === '' ? t('stateAny') : stateLabel(s)}
              </option>
            ))}
          </select>
        </div>
        <div class="field field-grow">
          <label for="f-type">{t('type')}</label>
          <input id="f-type" name="type" type="search" list="f-type-list" autocomplete="off" placeholder={t('typePlaceholder')} value={filter.type} onInput={(e) => set({ type: e.currentTarget.value })} />
          <datalist id="f-type-list">
            {knownTypes.map((k) => (
              <option key={k} value={k}>
                {typeLabel(k)}
              </option>
            ))}
          </datalist>
        </div>
        <div class="filters-end">
          <span class="muted" aria-live="polite">
            {t('shownOf', { shown: shown.length })}
          </span>
          {filtered ? (
            <button type="button" class="button link" onClick={() => alertFilter.set({ state: 'open', severity: '', office: '', type: '' })}>
              {t('clearFilters')}
            </button>
          ) : null}
        </div>
      </form>

      {error ? <ErrorBox error={error} retry={() => setAttempt((n) => n + 1)} /> : null}

      <div class="queue" data-testid="alert-queue" aria-busy={loading}>
        <div class="queue-head" aria-hidden="true">
          <span>{t('severity')}</span>
          <span>{t('alertDetail')}</span>
          <span>{t('device')}</span>
          <span>{t('state')}</span>
          <span>{t('raisedAt')}</span>
          <span>{t('actions')}</span>
        </div>
        {shown.length === 0 && !loading ? <Empty>{filtered ? t('noAlerts') : t('noOpenAlerts')}</Empty> : null}
        <ul class="queue-list">
          {shown.map((c) => (
            <AlertRow key={c.id} item={c} role={role} now={now} departments={user?.departments} />
          ))}
        </ul>
      </div>
    </section>
  )
}

function AlertRow({ item: c, role, now, departments }: { item: Case; role: Role | undefined; now: number; departments: readonly Department[] | undefined }) {
  const t = useT()
  const due = c.ackDueAt ? Date.parse(c.ackDueAt) - now : undefined
  const names = useStore(me)
  const where = [c.enterprise && (names?.enterpriseNames?.[c.enterprise] ?? c.enterprise), names?.officeNames?.[c.office] ?? c.office].filter(Boolean).join(' · ')
  const titleId = `alert-${c.id.replace(/[^A-Za-z0-9_-]/g, '_')}`
  return (
    <li
      class={`alert-row sev-row-${c.severity} state-row-${c.state} ${c.clearedAt ? 'is-cleared' : ''}`}
      data-testid="alert-row"
      data-alert-id={c.id}
      data-state={c.state}
      data-severity={c.severity}
      data-type={c.type}
      data-device={c.device}
      aria-labelledby={titleId}
    >
      <div class="cell cell-severity">
        <SeverityBadge severity={c.severity} />
      </div>
      <div class="cell cell-main">
        <a class="alert-title" id={titleId} href={href.alert(c.id)} data-testid="alert-open">
          {typeLabel(c.type)}
        </a>
        <span class="alert-message">{c.detail.message ?? ''}</span>
        <span class="alert-type muted">{c.type}</span>
      </div>
      <div class="cell cell-device">
        <span class="device-id">{c.device}</span>
        {where ? <span class="muted">{where}</span> : null}
      </div>
      <div class="cell cell-state">
        <StateBadge state={c.state} />
        {c.clearedAt ? (
          <span class="chip chip-ok">
            <Icon name="check" />
            {t('cleared')}
          </span>
        ) : null}
        {c.state === 'assigned' && c.assignedTo ? <span class="muted">{departmentName(departments, c.assignedTo)}</span> : null}
        {c.state === 'acknowledged' && c.acknowledgedBy ? <span class="muted">{c.acknowledgedBy}</span> : null}
      </div>
      <div class="cell cell-time">
        <time dateTime={c.raisedAt} title={formatDateTime(c.raisedAt)}>
          {formatDateTime(c.raisedAt)}
        </time>
        <span class="muted">{ago(c.raisedAt, now)}</span>
        {c.state === 'raised' && due !== undefined ? (
          <span class={`due ${due <= 0 ? 'overdue' : due < 60_000 ? 'soon' : ''}`}>
            <Icon name="clock" />
            {due <= 0 ? t('overdue') : t('dueIn', { time: duration(due) })}
          </span>
        ) : c.state === 'raised' && c.level === 'district' ? (
          // Escalated as far as it goes: no further deadline, and overdue until acknowledged.
          <span class="due overdue">
            <Icon name="clock" />
            {t('overdue')}
          </span>
        ) : null}
        {c.escalations > 0 ? (
          <span class="chip chip-warn">
            {levelLabel(c.level)} · {t('escalatedTimes', { n: c.escalations })}
          </span>
        ) : null}
      </div>
      <div class="cell cell-actions">
        <CaseActions kind="alert" item={c} role={role} />
      </div>
    </li>
  )
}
