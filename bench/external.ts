/**
 * npm run bench:external [-- --quick]
 *
 * The gateway in external mode (broker.mode: external): devices publish QoS 1 to a real Mosquitto,
 * the office broker, and the gateway reads them from its persistent session, committing each to
 * the outbox before its PUBACK to Mosquitto. Against the same load drained from the same
 * Mosquitto settings by mosquitto_sub (-q 1), in the same run.
 *
 * - Mosquitto as an office would run it: `max_inflight_messages 20` (its default; what the
 *   gateway may hold unacknowledged), `max_queued_messages 0` (no limit; docs/broker.md says why),
 *   anonymous on loopback for both sides.
 * - The load generator (devices/load/mqtt-load.ts, its own process): 8 clients, QoS 1, window 100,
 *   for a fixed time. Mosquitto acknowledges devices at once, so a slow consumer shows as a queue
 *   at Mosquitto, not as a slower load: the figure is the drain rate, every message published
 *   divided by the time from the first publish until the consumer has the last one.
 * - The gateway is the production bundle (dist/gateway.mjs) with the demo office config; its
 *   count is the outbox's rows added, and every message must arrive (`lost` says otherwise).
 *
 * Last line: {"bench":"external","msgs_per_s":…,"mosquitto_sub_msgs_per_s":…,"ratio":…,"published":…,"lost":…}
 */
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startMosquitto } from './lib/mosquitto.ts'
import { peakRssMb, runForJson, startProcess } from './lib/proc.ts'
import { GatewayProcess, ports } from './lib/stack.ts'

const quick = process.argv.includes('--quick')
const seconds = quick ? 5 : 15
const clients = 8
const window = 100
/** Mosquitto's own default, as an office broker runs it. */
const MAX_INFLIGHT = 20
const loadScript = join(fileURLToPath(new URL('../dist/', import.meta.url)), 'mqtt-load.mjs')

interface Drain {
  published: number
  delivered: number
  /** From the first publish until the last message was delivered. */
  seconds: number
  msgs_per_s: number
  /** Delivered while the load ran: how far the consumer kept up. */
  during_load: number
  rss_mb: number
}

/** Runs the load, then waits until `delivered()` stops growing or has everything. */
async function drain(url: string, delivered: () => Promise<number>): Promise<Omit<Drain, 'rss_mb'>> {
  const before = await delivered()
  const started = performance.now()
  const load = await runForJson<{ acked: number }>(process.execPath, [loadScript, '--url', url, '--clients', String(clients), '--seconds', String(seconds), '--qos', '1', '--window', String(window)])
  const duringLoad = (await delivered()) - before
  let count = duringLoad
  let last = performance.now()
  let finished = performance.now()
  // Polled every 20 ms: the end time is known to that; a consumer stuck for 5 s is reported as losing the rest.
  while (count < load.acked && performance.now() - last < 5000) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    const now = (await delivered()) - before
    if (now > count) last = performance.now()
    count = now
    finished = performance.now()
  }
  const elapsed = (finished - started) / 1000
  return { published: load.acked, delivered: count, seconds: elapsed, msgs_per_s: Math.round(count / elapsed), during_load: duringLoad }
}

async function benchGateway(): Promise<Drain> {
  const mosquitto = await startMosquitto({ maxInflight: MAX_INFLIGHT, maxQueued: 0 })
  const [mqttPort, httpPort] = await ports(2)
  const gw = new GatewayProcess('dist', mqttPort, httpPort, 'http://127.0.0.1:9', {
    broker: { mode: 'external', tcp: null, external: { url: `mqtt://127.0.0.1:${mosquitto.port}`, clientId: 'gw-bench-external', topic: 'dev/+/+' } },
  })
  try {
    await gw.start()
    const added = async () => {
      const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()
      return metrics
        .split('\n')
        .filter((l) => l.startsWith('gateway_outbox_rows_added_total'))
        .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)
    }
    const result = await drain(`mqtt://127.0.0.1:${mosquitto.port}`, added)
    return { ...result, rss_mb: peakRssMb(gw.child!.proc.pid!) }
  } finally {
    await gw.kill('SIGTERM')
    gw.cleanup()
    await mosquitto.stop()
  }
}

async function benchMosquittoSub(): Promise<Drain> {
  const mosquitto = await startMosquitto({ maxInflight: MAX_INFLIGHT, maxQueued: 0 })
  // A persistent session, as the gateway's, so Mosquitto queues for it the same way.
  const sink = startProcess('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(mosquitto.port), '-q', '1', '-c', '-i', 'bench-external-sink', '-t', 'dev/+/+'])
  let lines = 0
  sink.proc.stdout!.on('data', (d: Buffer) => {
    for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) lines++
  })
  try {
    await new Promise((resolve) => setTimeout(resolve, 300))
    const result = await drain(`mqtt://127.0.0.1:${mosquitto.port}`, async () => lines)
    return { ...result, rss_mb: peakRssMb(sink.proc.pid!) }
  } finally {
    await sink.stop()
    await mosquitto.stop()
  }
}

const ours = await benchGateway()
const theirs = await benchMosquittoSub()
const ratio = ours.msgs_per_s / theirs.msgs_per_s
const line = (name: string, d: Drain) =>
  `  ${name.padEnd(18)} ${d.msgs_per_s.toLocaleString('en')} msgs/s drained (${d.delivered.toLocaleString('en')} of ${d.published.toLocaleString('en')} in ${d.seconds.toFixed(1)} s; ${d.during_load.toLocaleString('en')} while the load ran), peak RSS ${d.rss_mb.toFixed(0)} MB`
console.log(`external-mode bench (${quick ? 'quick' : 'full'}: ${seconds} s of load, ${clients} QoS 1 publishers to Mosquitto, max_inflight_messages ${MAX_INFLIGHT})`)
console.log(line('GridWatch gateway', ours))
console.log(line('mosquitto_sub', theirs))
console.log(`  ratio              ${ratio.toFixed(2)}`)
console.log(
  JSON.stringify({
    bench: 'external',
    msgs_per_s: ours.msgs_per_s,
    mosquitto_sub_msgs_per_s: theirs.msgs_per_s,
    ratio: Number(ratio.toFixed(3)),
    published: ours.published,
    lost: ours.published - ours.delivered,
    during_load: ours.during_load,
    mosquitto_sub_lost: theirs.published - theirs.delivered,
    rss_mb: Math.round(ours.rss_mb),
    max_inflight_messages: MAX_INFLIGHT,
    seconds,
    quick,
  }),
)
