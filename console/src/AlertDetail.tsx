/** One alert: what happened, its whole history, the device's readings around it, and the actions. */
import type { ComponentChildren } from 'preact'
import { useEffect, useMemo } from 'preact/hooks'
import { ApiError, api, me } from './api.ts'
import { departmentName } from './Alerts.tsx'
import { CaseActions } from './CaseActions.tsx'
import { Chart, type ChartSpec } from './Chart.tsx'
import { ago, duration, formatDateTime, formatNumber, historyActionLabel, lang, levelLabel, quantityLabel, t as tr, typeLabel, useT } from './i18n.ts'
import { alerts, upsert } from './live.ts'
import { href } from './router.ts'
import { useStore } from './store.ts'
import type { Case, Reading, Role, Transition } from './types.ts'
import { Empty, ErrorBox, Icon, Loading, SeverityBadge, StateBadge, useLoad, useNow } from './ui.tsx'

interface Detail {
  alert: Case
  history: Transition[]
  readings?: Reading[]
  /** The event store was down: the case is shown, its chart is not. */
  readingsUnavailable?: boolean
  mayAct: boolean
}

export function AlertDetail({ id, role }: { id: string; role: Role | undefined }) {
  const t = useT()
  const names = useStore(me)
  const loaded = useLoad((signal) => api<Detail>('GET', `/v1/alerts/${encodeURIComponent(id)}`, undefined, { signal }), [id])
  const cached = useStore(alerts).get(id)
  const user = useStore(me)
  const now = useNow(1000)
  const detail = loaded.data
  // The live stream says it changed: fetch again for the new history entries.
  const loadedVersion = detail?.alert.version
  useEffect(() => {
    if (cached && loadedVersion !== undefined && cached.version > loadedVersion) loaded.reload()
  }, [cached?.version, loadedVersion])
  useEffect(() => {
    if (detail) upsert('alert', detail.alert)
  }, [detail])

  if (!detail) {
    if (loaded.error) {
      const notFound = loaded.error instanceof ApiError && loaded.error.status === 404
      return (
        <section class="view" aria-labelledby="detail-title">
          <BackLink />
          <h1 id="detail-title" tabIndex={-1}>
            {t('alertDetail')}
          </h1>
          {notFound ? <Empty>{t('notFound')}</Empty> : <ErrorBox error={loaded.error} retry={loaded.reload} />}
        </section>
      )
    }
    return (
      <section class="view">
        <BackLink />
        <Loading />
      </section>
    )
  }
  // The stream may be a step ahead of the detail answer; show the newer alert.
  const a = cached && cached.version > detail.alert.version ? cached : detail.alert
  const d = a.detail
  // At the top level an unacknowledged alert has no further deadline: it is simply overdue.
  const due = a.state === 'raised' ? (a.ackDueAt ? Date.parse(a.ackDueAt) - now : a.level === 'district' ? 0 : undefined) : undefined
  return (
    <section class={`view detail sev-detail-${a.severity}`} data-testid="alert-detail" data-alert-id={a.id} data-state={a.state} aria-labelledby="detail-title">
      <BackLink />
      <header class="detail-head">
        <div class="detail-title-row">
          <SeverityBadge severity={a.severity} />
          <h1 id="detail-title" tabIndex={-1}>
            {typeLabel(a.type)} · {a.device}
          </h1>
          <StateBadge state={a.state} />
          {a.clearedAt ? (
            <span class="chip chip-ok">
              <Icon name="check" />
              {t('cleared')}
            </span>
          ) : null}
        </div>
        {d.message ? <p class="detail-message">{d.message}</p> : null}
        <CaseActions kind="alert" item={a} role={role} mayAct={detail.mayAct} onDone={() => loaded.reload()} />
      </header>

      <div class="detail-grid">
        <section class="panel" aria-labelledby="facts-title">
          <h2 id="facts-title" class="sr-only">
            {t('alertDetail')}
          </h2>
          <dl class="facts">
            <Fact label={t('raisedAt')}>
              {formatDateTime(a.raisedAt)} <span class="muted">({ago(a.raisedAt, now)})</span>
            </Fact>
            <Fact label={t('type')}>{a.type}</Fact>
            <Fact label={t('device')}>{a.device}</Fact>
            {a.enterprise ? <Fact label={t('enterprise')}>{names?.enterpriseNames?.[a.enterprise] ?? a.enterprise}</Fact> : null}
            <Fact label={t('office')}>{names?.officeNames?.[a.office] ?? a.office}</Fact>
            <Fact label={t('level')}>
              {levelLabel(a.level)}
              {a.escalations > 0 ? <span class="muted"> · {t('escalatedTimes', { n: a.escalations })}</span> : null}
            </Fact>
            {due !== undefined ? (
              <Fact label={t('ackDue')}>
                <span class={`due ${due <= 0 ? 'overdue' : ''}`}>
                  <Icon name="clock" />
                  {due <= 0 ? t('overdue') : `${formatDateTime(a.ackDueAt)} (${duration(due)})`}
                </span>
              </Fact>
            ) : null}
            {d.quantity ? (
              <Fact label={t('value')}>
                {quantityLabel(d.quantity)}: {formatNumber(d.value)} {d.unit ?? ''}
              </Fact>
            ) : null}
            {d.threshold !== undefined ? (
              <Fact label={t('threshold')}>
                {formatNumber(d.threshold)} {d.unit ?? ''}
              </Fact>
            ) : null}
            {d.peak !== undefined ? (
              <Fact label={t('peak')}>
                {formatNumber(d.peak)} {d.unit ?? ''}
              </Fact>
            ) : null}
            {a.clearedAt ? <Fact label={t('clearedAt')}>{formatDateTime(a.clearedAt)}</Fact> : null}
            {a.acknowledgedBy ? (
              <Fact label={t('acknowledgedBy')}>
                {a.acknowledgedBy} <span class="muted">{formatDateTime(a.acknowledgedAt)}</span>
              </Fact>
            ) : null}
            {a.assignedTo ? (
              <Fact label={t('assignedTo')}>
                {departmentName(user?.departments, a.assignedTo)} <span class="muted">{formatDateTime(a.assignedAt)}</span>
              </Fact>
            ) : null}
            <Fact label={t('id')}>
              <span class="mono-ish">{a.id}</span>
            </Fact>
          </dl>
        </section>

        <section class="panel history-panel" aria-labelledby="history-title">
          <h2 id="history-title">{t('history')}</h2>
          <History items={detail.history} />
        </section>

        {d.quantity ? (
          <section class="panel chart-panel" aria-labelledby="readings-title">
            <h2 id="readings-title">{t('readings')}</h2>
            {detail.readingsUnavailable ? <p class="muted">{t('readingsUnavailable')}</p> : <AlertReadings alert={a} readings={detail.readings ?? []} />}
          </section>
        ) : null}
      </div>
    </section>
  )
}

function BackLink() {
  const t = useT()
  return (
    <a class="back" href={href.alerts()}>
      <Icon name="left" />
      {t('alertQueue')}
    </a>
  )
}

function Fact({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="fact">
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  )
}

export function History({ items }: { items: readonly Transition[] }) {
  const t = useT()
  const departments = useStore(me)?.departments
  return (
    <ol class="history">
      {items.map((h) => (
        <li key={h.seq} class={`history-item action-${h.action}`} data-testid="history-item" data-action={h.action}>
          <span class="history-dot" aria-hidden="true" />
          <div class="history-body">
            <div class="history-line">
              <strong>{historyActionLabel(h.action)}</strong>
              <time dateTime={h.at}>{formatDateTime(h.at)}</time>
            </div>
            <div class="history-meta muted">
              {t('by', { actor: h.actor })}
              {h.department ? ` · ${t('toDepartment', { department: departmentName(departments, h.department) })}` : ''}
              {h.level ? ` · ${t('atLevel', { level: levelLabel(h.level) })}` : ''}
            </div>
            {h.note ? <p class="history-note">{h.note}</p> : null}
          </div>
        </li>
      ))}
    </ol>
  )
}

function AlertReadings({ alert: a, readings }: { alert: Case; readings: Reading[] }) {
  const t = useT()
  const l = useStore(lang)
  const d = a.detail
  const spec = useMemo<ChartSpec>(() => {
    const rows = readings.map((r) => ({ t: Date.parse(r.time) / 1000, v: r.value }))
    return {
      timeLabel: tr('time'),
      times: rows.map((r) => r.t),
      values: rows.map((r) => r.v),
      valueLabel: quantityLabel(d.quantity ?? ''),
      unit: readings[0]?.unit ?? d.unit,
      points: rows.length < 120,
      levels: d.threshold !== undefined ? [{ label: tr('threshold'), value: d.threshold, color: '#b91c1c' }] : [],
      markers: [
        { label: tr('raisedAt'), time: Date.parse(a.raisedAt) / 1000, color: '#b91c1c' },
        ...(a.clearedAt ? [{ label: tr('clearedAt'), time: Date.parse(a.clearedAt) / 1000, color: '#15803d' }] : []),
      ],
    }
    // The language is part of the labels drawn on the canvas.
  }, [readings, a.raisedAt, a.clearedAt, d.threshold, d.quantity, d.unit, l])
  return (
    <>
      <Chart spec={spec} shape={`${a.id}/${l}/${a.clearedAt ?? ''}/${readings.length}`} testid="alert-chart" label={t('chartLabel', { quantity: quantityLabel(d.quantity ?? ''), device: a.device })} points={readings.length} />
      {readings.length === 0 ? <p class="muted">{t('noReadings')}</p> : null}
    </>
  )
}
