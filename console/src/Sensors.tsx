/** Sensors by enterprise with their current values and alarm state; a sensor's trend with its levels. */
import { useMemo } from 'preact/hooks'
import { api, me, qs } from './api.ts'
import { Chart, withGaps, type ChartSpec, type LevelLine } from './Chart.tsx'
import { ago, deviceStatusLabel, formatDateTime, formatNumber, lang, quantityLabel, t as tr, useT } from './i18n.ts'
import { href, navigate, RANGES, type Range } from './router.ts'
import { useStore } from './store.ts'
import type { Device, Levels, Series } from './types.ts'
import { Empty, ErrorBox, Icon, Loading, useLoad, useNow } from './ui.tsx'

const RANGE_MS: Record<Range, number> = { '1h': 3_600_000, '6h': 6 * 3_600_000, '24h': 86_400_000, '7d': 7 * 86_400_000, '30d': 30 * 86_400_000 }
const DEFAULT_RANGE: Range = '1h'
const WARNING_COLOR = '#b45309'
const ALARM_COLOR = '#b91c1c'

type AlarmState = 'alarm' | 'warning' | 'normal'

function levelState(value: number, levels: Levels | undefined): AlarmState {
  if (levels?.alarm !== undefined && value >= levels.alarm) return 'alarm'
  if (levels?.warning !== undefined && value >= levels.warning) return 'warning'
  return 'normal'
}

export function alarmOf(d: Device): AlarmState {
  let state: AlarmState = d.openAlerts > 0 ? 'alarm' : 'normal'
  for (const [q, r] of Object.entries(d.latest)) {
    const s = levelState(r.value, d.levels?.[q])
    if (s === 'alarm') state = 'alarm'
    else if (s === 'warning' && state === 'normal') state = 'warning'
  }
  return state
}

export function SensorView(props: { office?: string; device?: string; quantity?: string; range?: Range }) {
  const t = useT()
  const loaded = useLoad((signal) => api<{ devices: Device[] }>('GET', '/v1/devices', undefined, { signal }), [], 30_000)
  const now = useNow(10_000)
  const devices = loaded.data?.devices
  const groups = useMemo(() => {
    const map = new Map<string, { name: string; devices: Device[] }>()
    for (const d of devices ?? []) {
      const key = d.enterprise ?? ''
      let g = map.get(key)
      if (!g) map.set(key, (g = { name: d.enterpriseName ?? d.enterprise ?? '', devices: [] }))
      g.devices.push(d)
    }
    // Enterprises by name; devices without one last.
    return [...map.entries()].sort(([a, x], [b, y]) => (a === '' ? 1 : b === '' ? -1 : x.name.localeCompare(y.name, 'zh-CN')))
  }, [devices])
  const selected = props.device !== undefined ? devices?.find((d) => d.id === props.device && d.office === props.office) : undefined

  return (
    <section class="view sensor-view" data-testid="sensor-view" aria-labelledby="sensors-title">
      <div class="view-head">
        <h1 id="sensors-title" tabIndex={-1}>
          {t('sensors')}
        </h1>
        <button type="button" class="button ghost" onClick={loaded.reload} disabled={loaded.loading}>
          <Icon name="refresh" />
          {t('refresh')}
        </button>
      </div>
      {loaded.error ? <ErrorBox error={loaded.error} retry={loaded.reload} /> : null}
      <div class={`sensor-layout ${props.device ? 'has-selection' : ''}`}>
        <div class="sensor-list">
          {!devices ? loaded.error ? null : <Loading /> : devices.length === 0 ? <Empty>{t('noDevices')}</Empty> : null}
          {groups.map(([key, g]) => (
            <section key={key || '-'} class="enterprise-group" aria-labelledby={`ent-${key || 'none'}`}>
              <h2 id={`ent-${key || 'none'}`} class="group-title">
                {key ? g.name : t('noEnterprise')}
                {key && g.name !== key ? <span class="muted"> {key}</span> : null}
              </h2>
              <ul class="sensor-rows">
                {g.devices.map((d) => (
                  <SensorRow key={`${d.office}/${d.id}`} device={d} now={now} selected={d === selected} range={props.range} />
                ))}
              </ul>
            </section>
          ))}
        </div>
        {props.device !== undefined && props.office !== undefined ? (
          <SensorTrend office={props.office} device={props.device} info={selected} quantity={props.quantity} range={props.range ?? DEFAULT_RANGE} />
        ) : (
          <aside class="panel trend-panel trend-empty">
            <p class="muted">{t('chooseSensor')}</p>
          </aside>
        )}
      </div>
    </section>
  )
}

function SensorRow({ device: d, now, selected, range }: { device: Device; now: number; selected: boolean; range: Range | undefined }) {
  const t = useT()
  const officeNames = useStore(me)?.officeNames
  const state = alarmOf(d)
  const quantities = Object.keys(d.latest)
  return (
    <li class={`sensor-row alarm-${state} ${selected ? 'selected' : ''}`} data-testid="sensor-row" data-device={d.id} data-office={d.office} data-alarm={String(state !== 'normal')}>
      <a class="sensor-link" href={href.sensor(d.office, d.id, quantities[0], range ?? DEFAULT_RANGE)} aria-current={selected ? 'true' : undefined}>
        <span class="sensor-name">
          <span class="device-id">{d.id}</span>
          <span class="muted">{officeNames?.[d.office] ?? d.office}</span>
        </span>
        <span class="sensor-values">
          {quantities.length === 0 ? <span class="muted">{t('noValue')}</span> : null}
          {quantities.map((q) => {
            const r = d.latest[q]
            const s = levelState(r.value, d.levels?.[q])
            return (
              <span key={q} class={`reading reading-${s}`}>
                <span class="reading-q">{quantityLabel(q)}</span>
                <span class="reading-v">
                  {formatNumber(r.value)}
                  <small> {r.unit}</small>
                </span>
                <span class="muted reading-t" title={formatDateTime(r.time)}>
                  {ago(r.time, now)}
                </span>
              </span>
            )
          })}
        </span>
        <span class="sensor-state">
          <span class={`badge alarm-badge alarm-badge-${state}`}>
            <Icon name={state === 'alarm' ? 'critical' : state === 'warning' ? 'major' : 'check'} />
            {state === 'alarm' ? t('alarm') : state === 'warning' ? t('warning') : t('normal')}
          </span>
          {d.openAlerts > 0 ? (
            <span class="muted">
              {t('openAlerts')}: {d.openAlerts}
            </span>
          ) : null}
          {d.status ? <span class={`muted status-${d.status}`}>{deviceStatusLabel(d.status)}</span> : null}
          {d.movedAway ? <span class="muted moved-away">{t('movedAway')}</span> : null}
        </span>
      </a>
    </li>
  )
}

function SensorTrend(props: { office: string; device: string; info: Device | undefined; quantity: string | undefined; range: Range }) {
  const t = useT()
  const l = useStore(lang)
  const quantities = props.info ? Object.keys(props.info.latest) : props.quantity ? [props.quantity] : []
  const quantity = props.quantity ?? quantities[0]
  const span = RANGE_MS[props.range]
  const window = span <= RANGE_MS['24h'] ? '1m' : '1h'
  const loaded = useLoad(
    (signal) => {
      if (!quantity) return Promise.resolve(undefined)
      const to = Date.now()
      return api<Series>(
        'GET',
        `/v1/series${qs({ device: props.device, office: props.office, quantity, window, from: new Date(to - span).toISOString(), to: new Date(to).toISOString() })}`,
        undefined,
        { signal },
      )
    },
    [props.office, props.device, quantity, props.range],
    span <= RANGE_MS['24h'] ? 60_000 : 300_000,
  )
  const series = loaded.data
  // Only an answer for what is asked now (not the previous range still on screen) counts as drawn.
  const current =
    series &&
    series.device === props.device &&
    series.quantity === quantity &&
    series.window === window &&
    Math.abs(Date.parse(series.to) - Date.parse(series.from) - span) < 60_000
      ? series
      : undefined
  const levels = quantity ? props.info?.levels?.[quantity] : undefined
  const unit = series?.unit ?? (quantity ? props.info?.latest[quantity]?.unit : undefined) ?? levels?.unit
  const spec = useMemo<ChartSpec | undefined>(() => {
    if (!series) return undefined
    const step = series.window === '1m' ? 60 : series.window === '1h' ? 3600 : 86400
    const rows = series.buckets.map((b) => ({ t: Date.parse(b.time) / 1000, b }))
    const { times, columns } = withGaps(rows, step, 3, (r) => [r.b.mean, r.b.min, r.b.max])
    const lines: LevelLine[] = []
    if (levels?.warning !== undefined) lines.push({ label: tr('warningLevel'), value: levels.warning, color: WARNING_COLOR })
    if (levels?.alarm !== undefined) lines.push({ label: tr('alarmLevel'), value: levels.alarm, color: ALARM_COLOR })
    return {
      timeLabel: tr('time'),
      times,
      values: columns[0],
      valueLabel: tr('mean'),
      band: { min: columns[1], max: columns[2], minLabel: tr('min'), maxLabel: tr('max') },
      levels: lines,
      unit,
      points: series.buckets.length < 60,
      xRange: [Date.parse(series.from) / 1000, Date.parse(series.to) / 1000],
    }
  }, [series, levels?.warning, levels?.alarm, unit, l])
  const stats = useMemo(() => {
    const b = current?.buckets ?? []
    if (b.length === 0) return undefined
    return { last: b[b.length - 1], min: Math.min(...b.map((x) => x.min)), max: Math.max(...b.map((x) => x.max)) }
  }, [current])
  const go = (q: string | undefined, r: Range) => navigate(href.sensor(props.office, props.device, q, r))

  return (
    <section class="panel trend-panel" aria-labelledby="trend-title">
      <div class="trend-head">
        <h2 id="trend-title">
          {t('trend')}: {props.device}
          {quantity ? <span class="muted"> · {quantityLabel(quantity)}</span> : null}
        </h2>
        <a class="button ghost small" href={href.sensors()}>
          <Icon name="x" />
          {t('closeChart')}
        </a>
      </div>
      <div class="trend-controls">
        {quantities.length > 1 ? (
          <div class="field inline">
            <label for="trend-quantity">{t('quantity')}</label>
            <select id="trend-quantity" name="quantity" value={quantity} onChange={(e) => go(e.currentTarget.value, props.range)}>
              {quantities.map((q) => (
                <option key={q} value={q}>
                  {quantityLabel(q)}
                </option>
              ))}
            </select>
          </div>
        ) : null}
        <div class="segmented" role="group" aria-label={t('range')}>
          {RANGES.map((r) => (
            <button key={r} type="button" class="segment" data-testid="range" data-range={r} aria-pressed={r === props.range} onClick={() => go(quantity, r)}>
              {t(`range${r}` as 'range1h')}
            </button>
          ))}
        </div>
      </div>
      {loaded.error ? <ErrorBox error={loaded.error} retry={loaded.reload} /> : null}
      {!quantity ? <Empty>{t('noValue')}</Empty> : null}
      {spec ? (
        <div class={`chart-wrap ${loaded.loading ? 'is-loading' : ''}`}>
          <Chart
            spec={spec}
            shape={`${props.office}/${props.device}/${quantity ?? ''}/${props.range}/${l}/${levels?.warning ?? ''}/${levels?.alarm ?? ''}/${unit ?? ''}/${spec.points ? 'points' : 'lines'}`}
            testid="sensor-chart"
            label={t('chartLabel', { quantity: quantityLabel(quantity ?? ''), device: props.device })}
            points={current ? current.buckets.length : undefined}
            attrs={{ 'data-range': props.range, 'data-window': window, ...(current ? {} : { 'aria-busy': 'true' }) }}
          />
          {current && current.buckets.length === 0 ? <p class="chart-empty">{t('noData')}</p> : null}
        </div>
      ) : quantity && !loaded.error ? (
        <Loading />
      ) : null}
      <div class="trend-foot">
        {stats ? (
          <dl class="stats">
            <div>
              <dt>{t('latest')}</dt>
              <dd>
                {/* The device's latest reading; the last window's mean only when the center has none. */}
                {formatNumber((quantity !== undefined ? props.info?.latest[quantity]?.value : undefined) ?? stats.last.mean)} {unit ?? ''}
              </dd>
            </div>
            <div>
              <dt>{t('min')}</dt>
              <dd>
                {formatNumber(stats.min)} {unit ?? ''}
              </dd>
            </div>
            <div>
              <dt>{t('max')}</dt>
              <dd>
                {formatNumber(stats.max)} {unit ?? ''}
              </dd>
            </div>
            {levels?.warning !== undefined ? (
              <div>
                <dt>{t('warningLevel')}</dt>
                <dd>
                  {formatNumber(levels.warning)} {unit ?? ''}
                </dd>
              </div>
            ) : null}
            {levels?.alarm !== undefined ? (
              <div>
                <dt>{t('alarmLevel')}</dt>
                <dd>
                  {formatNumber(levels.alarm)} {unit ?? ''}
                </dd>
              </div>
            ) : null}
          </dl>
        ) : null}
        {current ? <p class="muted small">{t('pointsShown', { n: current.buckets.length, window: current.window })}</p> : null}
        {props.info && quantity && !levels ? <p class="muted small">{t('levelsUnknown')}</p> : null}
      </div>
    </section>
  )
}
