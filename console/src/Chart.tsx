/** uPlot in a preact component: sized to its container, rebuilt when its data or series change. */
import uPlot from 'uplot'
import { useEffect, useRef } from 'preact/hooks'
import { formatDateTime, formatNumber, wall } from './i18n.ts'

export interface LevelLine {
  label: string
  value: number
  color: string
}

export interface Marker {
  label: string
  time: number
  color: string
}

export interface ChartSpec {
  /** The legend's name for the time axis. */
  timeLabel: string
  /** Epoch seconds. */
  times: number[]
  /** The main line. */
  values: (number | null)[]
  valueLabel: string
  /** A min–max band around the main line, drawn as a fill between two thin lines. */
  band?: { min: (number | null)[]; max: (number | null)[]; minLabel: string; maxLabel: string }
  /** Horizontal lines (warning and alarm levels, a threshold), drawn as constant series. */
  levels?: LevelLine[]
  /** Vertical lines at moments (an alert raised, cleared). */
  markers?: Marker[]
  unit?: string
  /** Show points (few, raw readings) or not. */
  points?: boolean
  /** The time span asked for (epoch seconds): the x axis covers all of it, however little data there is. */
  xRange?: [number, number]
}

const BLUE = '#1d4ed8'
const pad = (n: number) => String(n).padStart(2, '0')

function axisTime(span: number) {
  return (_u: uPlot, splits: number[]) =>
    splits.map((v) => {
      const w = wall(v * 1000)
      const hm = `${pad(w.hour)}:${pad(w.minute)}`
      if (span <= 2 * 86400) return hm
      const md = `${pad(w.month)}-${pad(w.day)}`
      return span <= 8 * 86400 ? `${md} ${hm}` : md
    })
}

/** Adds the range's ends to the time axis (with no values), so the axis and the level lines span it. */
function padToRange(spec: ChartSpec, [from, to]: [number, number]): ChartSpec {
  const times = [...spec.times]
  const values = [...spec.values]
  const min = spec.band ? [...spec.band.min] : undefined
  const max = spec.band ? [...spec.band.max] : undefined
  if (times.length === 0 || times[0] > from) {
    times.unshift(from)
    values.unshift(null)
    min?.unshift(null)
    max?.unshift(null)
  }
  if (times[times.length - 1] < to) {
    times.push(to)
    values.push(null)
    min?.push(null)
    max?.push(null)
  }
  return { ...spec, times, values, ...(spec.band ? { band: { ...spec.band, min: min!, max: max! } } : {}) }
}

function build(spec: ChartSpec, width: number, height: number): { opts: uPlot.Options; data: uPlot.AlignedData } {
  if (spec.xRange) spec = padToRange(spec, spec.xRange)
  const unit = spec.unit ? ` ${spec.unit}` : ''
  const fmt = (_u: uPlot, v: number | null) => (v === null || v === undefined ? '—' : `${formatNumber(v)}${unit}`)
  const span = spec.times.length > 1 ? spec.times[spec.times.length - 1] - spec.times[0] : 3600
  const series: uPlot.Series[] = [{ label: spec.timeLabel, value: (_u, v) => (v === null ? '—' : formatDateTime(new Date(v * 1000).toISOString())) }]
  const data: (number | null)[][] = [spec.times]
  series.push({ label: spec.valueLabel, stroke: BLUE, width: 2, value: fmt, points: { show: spec.points ?? false, size: 4, fill: BLUE } })
  data.push(spec.values)
  const bands: uPlot.Band[] = []
  if (spec.band) {
    series.push({ label: spec.band.minLabel, stroke: 'rgba(29, 78, 216, 0.45)', width: 1, value: fmt, points: { show: false } })
    data.push(spec.band.min)
    series.push({ label: spec.band.maxLabel, stroke: 'rgba(29, 78, 216, 0.45)', width: 1, value: fmt, points: { show: false } })
    data.push(spec.band.max)
    bands.push({ series: [3, 2], fill: 'rgba(29, 78, 216, 0.12)' })
  }
  for (const level of spec.levels ?? []) {
    series.push({ label: level.label, stroke: level.color, width: 1.5, dash: [6, 4], value: fmt, points: { show: false } })
    data.push(spec.times.map(() => level.value))
  }
  const markers = spec.markers ?? []
  const opts: uPlot.Options = {
    width,
    height,
    series,
    bands,
    cursor: { focus: { prox: 16 } },
    legend: { live: true },
    scales: { x: { time: true } },
    axes: [
      { values: axisTime(span), stroke: '#475569', grid: { stroke: '#e2e8f0', width: 1 }, ticks: { stroke: '#cbd5e1', width: 1 } },
      { values: (_u, splits) => splits.map((v) => formatNumber(v)), stroke: '#475569', grid: { stroke: '#e2e8f0', width: 1 }, ticks: { stroke: '#cbd5e1', width: 1 }, size: 52 },
    ],
    hooks: {
      draw: [
        (u) => {
          if (markers.length === 0) return
          const ctx = u.ctx
          const { top, height: h } = u.bbox
          ctx.save()
          markers.forEach((m, i) => {
            const x = Math.round(u.valToPos(m.time, 'x', true))
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return
            ctx.strokeStyle = m.color
            ctx.lineWidth = 1.5 * devicePixelRatio
            ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio])
            ctx.beginPath()
            ctx.moveTo(x, top)
            ctx.lineTo(x, top + h)
            ctx.stroke()
            ctx.setLineDash([])
            ctx.fillStyle = m.color
            ctx.font = `${12 * devicePixelRatio}px system-ui, "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif`
            // Labels of close markers are stacked, not drawn over each other; near the right
            // edge they go to the left of their line.
            const width = ctx.measureText(m.label).width
            const right = x + 4 * devicePixelRatio + width > u.bbox.left + u.bbox.width
            ctx.fillText(m.label, right ? x - 4 * devicePixelRatio - width : x + 4 * devicePixelRatio, top + (14 + 16 * i) * devicePixelRatio)
          })
          ctx.restore()
        },
      ],
    },
  }
  return { opts, data: data as uPlot.AlignedData }
}

/**
 * `shape` names what the chart draws (series, levels, labels, language); while it stays the same,
 * new data replaces the old in place (a periodic refresh), otherwise the plot is built anew.
 */
export function Chart(props: { spec: ChartSpec; shape: string; testid: string; label: string; points: number | undefined; attrs?: Record<string, string> }) {
  const box = useRef<HTMLDivElement>(null)
  const plot = useRef<{ u: uPlot; shape: string; ro: ResizeObserver } | undefined>(undefined)
  useEffect(() => {
    const el = box.current
    if (!el) return
    const current = plot.current
    if (current && current.shape === props.shape) {
      current.u.setData(build(props.spec, current.u.width, current.u.height).data)
      return
    }
    current?.ro.disconnect()
    current?.u.destroy()
    const size = () => {
      const width = Math.max(240, Math.floor(el.clientWidth))
      return { width, height: width < 560 ? 220 : 300 }
    }
    const { width, height } = size()
    const { opts, data } = build(props.spec, width, height)
    const u = new uPlot(opts, data, el)
    const ro = new ResizeObserver(() => {
      const s = size()
      if (s.width !== u.width || s.height !== u.height) u.setSize(s)
    })
    ro.observe(el)
    plot.current = { u, shape: props.shape, ro }
  }, [props.spec, props.shape])
  useEffect(
    () => () => {
      plot.current?.ro.disconnect()
      plot.current?.u.destroy()
      plot.current = undefined
    },
    [],
  )
  return <div class="chart" ref={box} data-testid={props.testid} data-points={props.points === undefined ? undefined : String(props.points)} role="figure" aria-label={props.label} {...props.attrs} />
}

/**
 * Windows with nothing in them become nulls, so the line breaks where data is missing instead of
 * drawing a straight line across the gap.
 */
export function withGaps<T extends { t: number }>(rows: readonly T[], stepSeconds: number, width: number, pick: (r: T) => (number | null)[]): { times: number[]; columns: (number | null)[][] } {
  const times: number[] = []
  const columns: (number | null)[][] = Array.from({ length: width }, () => [])
  let previous: number | undefined
  for (const r of rows) {
    const values = pick(r)
    // Sparse but regular data (a sensor that reports every few minutes) stays one line; a real
    // outage (longer than three windows and a quarter of an hour) breaks it.
    if (previous !== undefined && r.t - previous > Math.max(3 * stepSeconds, 900)) {
      times.push(previous + stepSeconds)
      columns.forEach((c) => c.push(null))
    }
    times.push(r.t)
    values.forEach((v, i) => columns[i].push(v))
    previous = r.t
  }
  return { times, columns }
}
