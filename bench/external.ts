/**
 * npm run bench:external [-- --quick]
 *
 * The gateway in external mode (broker.mode: external): it reads devices' QoS 1 messages from a
 * real Mosquitto, the office broker, through its persistent session, and commits each to the
 * outbox before its PUBACK to Mosquitto. Against mosquitto_sub (-q 1, a persistent session too)
 * draining the same backlog from the same Mosquitto settings, in the same run.
 *
 * - Mosquitto as an office would run it: `max_inflight_messages 20` (its default; Debian's 2.0.11
 *   does not hold a consumer to it once PUBACKs flow), `max_queued_messages 0` (no limit;
 *   docs/broker.md says why), anonymous on loopback for every side.
 * - For each consumer: its session is made, the consumer goes away, the load generator
 *   (devices/load/mqtt-load.ts: 8 clients, QoS 1, window 100) publishes for a fixed time into
 *   Mosquitto's queue, and the consumer comes back and drains it alone. The two backlogs come
 *   from the same load for the same time; their sizes differ with the machine's pace. The rate is taken
 *   between 10 % and 90 % of the backlog, so neither the consumer's start nor the last poll
 *   counts.
 * - The gateway is the production bundle (dist/gateway.mjs) with the demo office config. Its count
 *   is the outbox's committed readings (gateway_outbox_rows_added_total{kind="reading"}), so
 *   aggregates and alerts do not count. `lost` is the published messages not committed and
 *   `extra` the committed beyond them (duplicates); the drain ends when the count reaches what
 *   was published, so a duplicate can hide a loss there.
 *
 * Last line: {"bench":"external","msgs_per_s":…,"mosquitto_sub_msgs_per_s":…,"ratio":…,"published":…,"lost":…}
 */
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startMosquitto, type RunningMosquitto } from './lib/mosquitto.ts'
import { peakRssMb, runForJson, startProcess, type Child } from './lib/proc.ts'
import { GatewayProcess, ports } from './lib/stack.ts'

const quick = process.argv.includes('--quick')
const seconds = quick ? 4 : 12
const clients = 8
const window = 100
/** Mosquitto's own default, as an office broker runs it. */
const MAX_INFLIGHT = 20
const loadScript = join(fileURLToPath(new URL('../dist/', import.meta.url)), 'mqtt-load.mjs')

interface Drain {
  published: number
  delivered: number
  /** Between 10 % and 90 % of the backlog. */
  msgs_per_s: number
  /** From the consumer's start to the last message, start-up included. */
  seconds: number
  rss_mb: number
}

async function publishBacklog(mosquitto: RunningMosquitto): Promise<number> {
  const args = [loadScript, '--url', `mqtt://127.0.0.1:${mosquitto.port}`, '--clients', String(clients), '--seconds', String(seconds), '--qos', '1', '--window', String(window)]
  return (await runForJson<{ acked: number }>(process.execPath, args)).acked
}

/** Polls `delivered()` every 10 ms until it has `published`, or stops growing for 5 s. */
async function drain(published: number, delivered: () => Promise<number>, started: number): Promise<Omit<Drain, 'rss_mb'>> {
  let count = 0
  let t10: number | undefined
  let t90: number | undefined
  let progress = performance.now()
  while (count < published && performance.now() - progress < 5000) {
    await new Promise((resolve) => setTimeout(resolve, 10))
    const now = await delivered()
    if (now > count) progress = performance.now()
    count = now
    if (t10 === undefined && count >= published * 0.1) t10 = performance.now()
    if (t90 === undefined && count >= published * 0.9) t90 = performance.now()
  }
  const rate = t10 !== undefined && t90 !== undefined && t90 > t10 ? (published * 0.8) / ((t90 - t10) / 1000) : 0
  return { published, delivered: count, msgs_per_s: Math.round(rate), seconds: (progress - started) / 1000 }
}

async function benchGateway(): Promise<Drain> {
  const mosquitto = await startMosquitto({ maxInflight: MAX_INFLIGHT, maxQueued: 0 })
  const [mqttPort, httpPort] = await ports(2)
  const gw = new GatewayProcess('dist', mqttPort, httpPort, 'http://127.0.0.1:9', {
    broker: { mode: 'external', tcp: null, external: { url: `mqtt://127.0.0.1:${mosquitto.port}`, clientId: 'gw-bench-external', topic: 'dev/+/+' } },
  })
  try {
    // Started means subscribed: the session exists, and Mosquitto queues for it while it is away.
    await gw.start()
    await gw.kill('SIGTERM')
    const published = await publishBacklog(mosquitto)
    const started = performance.now()
    await gw.start()
    const readings = async () => {
      const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()
      const line = metrics.split('\n').find((l) => l.startsWith('gateway_outbox_rows_added_total{kind="reading"}'))
      return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0
    }
    const result = await drain(published, readings, started)
    return { ...result, rss_mb: peakRssMb(gw.child!.proc.pid!) }
  } finally {
    await gw.kill('SIGTERM')
    gw.cleanup()
    await mosquitto.stop()
  }
}

async function benchMosquittoSub(): Promise<Drain> {
  const mosquitto = await startMosquitto({ maxInflight: MAX_INFLIGHT, maxQueued: 0 })
  const args = ['-h', '127.0.0.1', '-p', String(mosquitto.port), '-q', '1', '-c', '-i', 'bench-external-sink', '-t', 'dev/+/+']
  let sink: Child | undefined
  try {
    // mosquitto_sub says nothing when subscribed; half a second is plenty on loopback.
    sink = startProcess('mosquitto_sub', args)
    await new Promise((resolve) => setTimeout(resolve, 500))
    await sink.stop()
    const published = await publishBacklog(mosquitto)
    const started = performance.now()
    let lines = 0
    sink = startProcess('mosquitto_sub', args)
    sink.proc.stdout!.on('data', (d: Buffer) => {
      for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) lines++
    })
    const result = await drain(published, async () => lines, started)
    return { ...result, rss_mb: peakRssMb(sink.proc.pid!) }
  } finally {
    await sink?.stop()
    await mosquitto.stop()
  }
}

const ours = await benchGateway()
const theirs = await benchMosquittoSub()
const ratio = theirs.msgs_per_s > 0 ? ours.msgs_per_s / theirs.msgs_per_s : 0
const line = (name: string, d: Drain) =>
  `  ${name.padEnd(18)} ${d.msgs_per_s.toLocaleString('en')} msgs/s drained (${d.delivered.toLocaleString('en')} of ${d.published.toLocaleString('en')} queued; ${d.seconds.toFixed(1)} s from start to the last), peak RSS ${d.rss_mb.toFixed(0)} MB`
console.log(`external-mode bench (${quick ? 'quick' : 'full'}: a backlog of ${seconds} s of 8 QoS 1 publishers in Mosquitto, drained through max_inflight_messages ${MAX_INFLIGHT})`)
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
    lost: Math.max(0, ours.published - ours.delivered),
    extra: Math.max(0, ours.delivered - ours.published),
    mosquitto_sub_lost: theirs.published - theirs.delivered,
    rss_mb: Math.round(ours.rss_mb),
    max_inflight_messages: MAX_INFLIGHT,
    seconds,
    quick,
  }),
)
