/**
 * npm run bench:rules [-- --quick]
 *
 * Rule evaluation on one core (one thread, no I/O) for a realistic large office: 5,000 sensors in
 * 100 enterprises, 200 checkpoints on 30 routes with morning and evening tours, 60 patrol staff,
 * 40 cameras. The event mix: 90% sensor readings (mostly normal, some crossing alarm levels and
 * back), 8% checkpoint scans along the routes, 2% camera events. Every rule runs: thresholds with
 * debounce, rate, stuck and stale checks, tours, patrol, cameras, the storm guard. The clock ticks
 * once per simulated second, as in the gateway.
 *
 * Last line: {"bench":"rules","events_per_s":…,"tick_ms":…,…}
 */
import type { Envelope, EnvelopeDraft } from '../contracts/envelope.ts'
import { resolveGatewayConfig } from '../gateway/config/load.ts'
import { RuleEngine } from '../gateway/rules/engine.ts'

const quick = process.argv.includes('--quick')
const SENSORS = 5000
const CHECKPOINTS = 200
const ROUTES = 30
const CAMERAS = 40
const STAFF = 60
const EVENTS = quick ? 1_000_000 : 4_000_000
/** Simulated event rate, to place ticks and timestamps: a busy office. */
const SIM_RATE = 20_000

function office() {
  const grids = Array.from({ length: 20 }, (_, i) => ({ id: `g-${i}`, name: `Grid ${i}` }))
  const enterprises = Array.from({ length: 100 }, (_, i) => ({ id: `ent-${i}`, name: `Enterprise ${i}`, grid: `g-${i % 20}`, ...(i % 10 === 0 ? { thresholds: { gas: { low: 20, high: 40 } } } : {}) }))
  const types = ['gas-detector', 'gas-detector', 'co-detector', 'temperature-sensor'] as const
  const sensors = Array.from({ length: SENSORS }, (_, i) => ({ id: `s-${i}`, type: types[i % 4], enterprise: `ent-${i % 100}` }))
  const cameras = Array.from({ length: CAMERAS }, (_, i) => ({ id: `cam-${i}`, type: 'camera' as const, grid: `g-${i % 20}` }))
  const staff = Array.from({ length: STAFF }, (_, i) => ({ id: `staff-${i}`, name: `Staff ${i}`, grid: `g-${i % 20}`, phone: `phone-${i}` }))
  const phones = staff.map((s) => ({ id: s.phone, type: 'patrol-phone' as const }))
  const checkpoints = Array.from({ length: CHECKPOINTS }, (_, i) => ({ id: `cp-${i}`, tag: `TAG${String(i).padStart(6, '0')}`, name: `Checkpoint ${i}`, grid: `g-${i % 20}` }))
  const routes = Array.from({ length: ROUTES }, (_, r) => ({
    id: `r-${r}`,
    name: `Route ${r}`,
    ordered: r % 2 === 0,
    checkpoints: Array.from({ length: 7 }, (_, k) => `cp-${(r * 7 + k) % CHECKPOINTS}`).filter((cp, k, all) => all.indexOf(cp) === k),
    schedules: [
      { start: '08:00', durationMinutes: 90, graceMinutes: 15, staff: [`staff-${(r * 2) % STAFF}`, `staff-${(r * 2 + 1) % STAFF}`] },
      { start: '20:00', durationMinutes: 90, graceMinutes: 15, staff: [`staff-${(r * 2) % STAFF}`] },
    ],
  }))
  return resolveGatewayConfig(
    {
      gateway: { id: 'gw-bench', dataDir: '/tmp/unused' },
      office: { id: 'bench', name: 'Bench office' },
      uplink: { url: 'http://127.0.0.1:9' },
      broker: { allowAnonymous: true },
      communities: [{ id: 'c-0', name: 'Community', grids }],
      enterprises,
      devices: [...sensors, ...cameras, ...phones],
      staff,
      checkpoints,
      routes,
      thresholds: {
        gas: { unit: '%LEL', low: 25, high: 50, hysteresis: 5, debounceSamples: 2, ratePerMinute: 30, stuckMinutes: 60, staleMinutes: 10 },
        co: { unit: 'ppm', low: 24, high: 160, hysteresis: 4, staleMinutes: 10 },
        temperature: { unit: '°C', low: 60, high: 80, hysteresis: 5 },
      },
    },
    'bench office',
    { env: {} },
  )
}

const config = office()
let seq = 0
const stamp = (d: EnvelopeDraft): Envelope => Object.assign(d, { id: `gw-bench:${++seq}`, seq })
const engine = RuleEngine.forOffice(config, stamp)

// 08:00 local on a weekday, when the morning tours run.
const T0 = Date.UTC(2026, 10, 25, 0, 0)
const quantities = ['gas', 'gas', 'co', 'temperature'] as const
const units = { gas: '%LEL', co: 'ppm', temperature: '°C' }
const baseline = { gas: 3, co: 2, temperature: 22 }

/** Pre-built envelopes, so the timed loop measures the rules and nothing else. */
function makeEvent(i: number): EnvelopeDraft {
  const ts = T0 + Math.floor((i / SIM_RATE) * 1000)
  const r = i % 100
  const frame = { gateway: 'gw-bench', office: 'bench' }
  if (r < 90) {
    const s = (i * 7919) % SENSORS
    const q = quantities[s % 4]
    // Every 500th sensor is mid-excursion: climbs through the levels and back over its readings.
    const excursion = s % 500 === 0 ? 40 * Math.abs(Math.sin(i / 50_000)) : 0
    const value = Math.round((baseline[q] + excursion + ((i % 13) - 6) / 10) * 10) / 10
    return { ...frame, device: `s-${s}`, ts, kind: 'reading', payload: { quantity: q, value, unit: units[q] } }
  }
  if (r < 98) {
    const route = config.routes[i % ROUTES]
    const cp = route.checkpoints[Math.floor(i / ROUTES) % route.checkpoints.length]
    const staff = route.schedules[0].staff[0]
    return { ...frame, device: `phone-${staff.slice(6)}`, ts, kind: 'scan', payload: { tag: `TAG${cp.slice(3).padStart(6, '0')}`, checkpoint: cp, staff, method: 'nfc' } }
  }
  return { ...frame, device: `cam-${i % CAMERAS}`, ts, kind: 'camera', payload: { event: i % 2 ? 'intrusion' : 'crowding', confidence: 0.5 + (i % 50) / 100, region: 'gate' } }
}

const BATCH = 200_000
const events = Array.from({ length: BATCH }, (_, i) => makeEvent(i))
let alerts = 0
let tickTotal = 0
let ticks = 0

// Warm-up: the JIT, and the tours' since-mark before the morning tours.
engine.tick(T0 - 3_600_000)
for (let i = 0; i < 50_000; i++) engine.evaluate(stamp({ ...events[i] }), events[i].ts)

const started = performance.now()
for (let n = 0; n < EVENTS; n++) {
  const draft = events[n % BATCH]
  // Each envelope is evaluated once; shift its time so the simulated clock keeps moving.
  const ts = draft.ts + Math.floor(n / BATCH) * Math.floor((BATCH / SIM_RATE) * 1000)
  const e = stamp({ ...draft, ts })
  const out = engine.evaluate(e, ts)
  alerts += out.alerts.length
  if (n % SIM_RATE === 0) {
    const t = performance.now()
    alerts += engine.tick(ts).alerts.length
    tickTotal += performance.now() - t
    ticks++
  }
}
const seconds = (performance.now() - started) / 1000
const eventsPerS = Math.round(EVENTS / seconds)
const tickMs = tickTotal / ticks

console.log(`rules bench (${quick ? 'quick' : 'full'}): ${SENSORS} sensors, ${CHECKPOINTS} checkpoints, ${ROUTES} routes, ${CAMERAS} cameras, ${STAFF} staff`)
console.log(`  ${EVENTS.toLocaleString('en')} events in ${seconds.toFixed(2)} s on one thread: ${eventsPerS.toLocaleString('en')} events/s   (goal: ≥ 200,000)`)
console.log(`  ${alerts} alert events; one clock tick (all sensors, all tours): ${tickMs.toFixed(2)} ms`)
console.log(JSON.stringify({ bench: 'rules', events_per_s: eventsPerS, tick_ms: Number(tickMs.toFixed(2)), events: EVENTS, alerts, sensors: SENSORS, checkpoints: CHECKPOINTS, routes: ROUTES }))
