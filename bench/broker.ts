/**
 * npm run bench:broker [-- --quick]
 *
 * Messages per second through the broker, publisher → broker → subscriber, at QoS 0 and QoS 1:
 * GridWatch's broker (the bundle, its own process, with device auth, topic ACLs, every limit at
 * its default, and SQLite persistence with synchronous=FULL) against Mosquitto (anonymous, in
 * memory) in the same run, with the same load generator (devices/load/mqtt-load.ts, its own
 * process: 8 clients, at most 100 unacknowledged QoS 1 messages each) and the same subscriber.
 *
 * The subscriber keeps a persistent session (clean: false) on both brokers, as a gateway reading
 * from an office broker does so that a restart loses nothing: on ours every QoS 1 delivery is
 * then queued, tracked and cleared in SQLite. The rate is what the subscriber receives, from its
 * first message to its last.
 *
 * BENCH_BROKER_FLAGS adds node flags to our broker (e.g. `--cpu-prof --cpu-prof-dir=DIR`).
 *
 * Last line: {"bench":"broker","qos0_msgs_per_s":…,"qos1_msgs_per_s":…,"mosquitto_qos0_msgs_per_s":…,
 *             "mosquitto_qos1_msgs_per_s":…,"qos1_ratio":…}
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt, { type IClientOptions } from 'mqtt'
import { brokerDefaults } from '../broker/config.ts'
import { freePort } from '../common/ports.ts'
import { hashPassword } from '../common/secrets.ts'
import { startBrokerProcess, writeBrokerConfig } from './lib/broker-process.ts'
import { startMosquitto } from './lib/mosquitto.ts'
import { cpuSeconds, peakRssMb, runForJson } from './lib/proc.ts'
import { benchBrokerFlags, brokerEnv, brokerNodeFlags } from './lib/runtime.ts'

const quick = process.argv.includes('--quick')
const seconds = quick ? 5 : 15
const warmup = quick ? 1 : 3
const clients = 8
const window = 100
const DEVICE = 'bench-001'
const GATEWAY = 'gw-bench'
const password = (id: string) => `bench-${id}-password`

interface LoadResult {
  acked: number
  sent: number
  seconds: number
  msgs_per_s: number
}

interface Run {
  qos: 0 | 1
  session: 'persistent' | 'clean'
  published: number
  received: number
  msgs_per_s: number
  cpu_percent?: number
}

/** One measured run: a persistent-session subscriber on dev/+/reading, then the load. */
async function measure(url: string, qos: 0 | 1, secs: number, auth: boolean, pid?: number, session: Run['session'] = 'persistent'): Promise<Run> {
  const sub = await mqtt.connectAsync(url, {
    clientId: `bench-sub-${qos}-${session}`,
    clean: session === 'clean',
    reconnectPeriod: 0,
    ...(auth ? { username: GATEWAY, password: password(GATEWAY) } : {}),
  } satisfies IClientOptions)
  await sub.subscribeAsync('dev/+/reading', { qos })
  let received = 0
  let first = 0
  let last = 0
  sub.on('message', () => {
    const now = performance.now()
    if (received === 0) first = now
    last = now
    received++
  })
  const args = ['dist/mqtt-load.mjs', '--url', url, '--clients', String(clients), '--seconds', String(secs), '--qos', String(qos), '--window', String(window)]
  if (auth) args.push('--device', DEVICE, '--password', password(DEVICE))
  const cpu0 = pid ? cpuSeconds(pid) : 0
  const load = await runForJson<LoadResult>(process.execPath, args)
  // Let in-flight deliveries land: until everything published arrived, or 2 s of silence.
  for (let quiet = 0; received < load.acked && quiet < 20; ) {
    const before = received
    await new Promise((r) => setTimeout(r, 100))
    quiet = received === before ? quiet + 1 : 0
  }
  const cpu = pid ? ((cpuSeconds(pid) - cpu0) / load.seconds) * 100 : undefined
  await sub.unsubscribeAsync('dev/+/reading')
  await sub.endAsync()
  const span = (last - first) / 1000
  return { qos, session, published: load.acked, received, msgs_per_s: Math.round(received / Math.max(span, 0.001)), ...(cpu !== undefined ? { cpu_percent: Math.round(cpu) } : {}) }
}

async function benchOurs(): Promise<{ runs: Run[]; rssMb: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'gridwatch-bench-broker-'))
  const port = await freePort()
  const config = writeBrokerConfig(dir, {
    id: 'bench-broker',
    broker: { ...brokerDefaults, tcp: { host: '127.0.0.1', port }, persistence: { path: join(dir, 'broker.db'), synchronous: 'full' } },
    devices: [
      { id: DEVICE, secret: await hashPassword(password(DEVICE)) },
      { id: GATEWAY, secret: await hashPassword(password(GATEWAY)), role: 'gateway' },
    ],
    http: null,
  })
  // Production settings from deploy/gridwatch-broker.service (memory flags and glibc environment).
  const broker = await startBrokerProcess(config, { build: 'dist', nodeFlags: [...brokerNodeFlags(), ...benchBrokerFlags()], env: brokerEnv() })
  const pid = broker.child.pid!
  try {
    const url = `mqtt://127.0.0.1:${port}`
    const runs: Run[] = []
    for (const qos of [0, 1] as const) {
      await measure(url, qos, warmup, true)
      runs.push(await measure(url, qos, seconds, true, pid))
    }
    // Where the time goes: the same QoS 1 load to a clean-session subscriber never touches SQLite.
    runs.push(await measure(url, 1, seconds, true, pid, 'clean'))
    return { runs, rssMb: peakRssMb(pid) }
  } finally {
    await broker.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

async function benchMosquitto(): Promise<Run[]> {
  const mosquitto = await startMosquitto()
  try {
    const url = `mqtt://127.0.0.1:${mosquitto.port}`
    const runs: Run[] = []
    for (const qos of [0, 1] as const) {
      await measure(url, qos, warmup, false)
      runs.push(await measure(url, qos, seconds, false, mosquitto.child.proc.pid))
    }
    runs.push(await measure(url, 1, seconds, false, mosquitto.child.proc.pid, 'clean'))
    return runs
  } finally {
    await mosquitto.stop()
  }
}

const ours = await benchOurs()
const theirs = await benchMosquitto()
const rate = (runs: Run[], qos: 0 | 1, session: Run['session'] = 'persistent') => runs.find((r) => r.qos === qos && r.session === session)!.msgs_per_s
const describe = (name: string, runs: Run[]) =>
  runs.map((r) => `  ${name} QoS ${r.qos}, ${r.session} session: ${r.msgs_per_s} msgs/s (received ${r.received} of ${r.published} published, broker CPU ${r.cpu_percent ?? '?'}%)`).join('\n')
console.log(`broker throughput, ${clients} publishers → 1 subscriber, ${seconds} s per run${quick ? ' (quick)' : ''}`)
console.log(describe('gridwatch', ours.runs))
console.log(describe('mosquitto', theirs))
console.log(`  gridwatch broker peak RSS ${ours.rssMb.toFixed(0)} MB`)
const result = {
  bench: 'broker',
  qos0_msgs_per_s: rate(ours.runs, 0),
  qos1_msgs_per_s: rate(ours.runs, 1),
  mosquitto_qos0_msgs_per_s: rate(theirs, 0),
  mosquitto_qos1_msgs_per_s: rate(theirs, 1),
  qos1_ratio: Number((rate(ours.runs, 1) / rate(theirs, 1)).toFixed(2)),
  qos1_clean_session_msgs_per_s: rate(ours.runs, 1, 'clean'),
  mosquitto_qos1_clean_session_msgs_per_s: rate(theirs, 1, 'clean'),
  qos1_clean_session_ratio: Number((rate(ours.runs, 1, 'clean') / rate(theirs, 1, 'clean')).toFixed(2)),
  qos0_delivered: ours.runs[0].received / Math.max(1, ours.runs[0].published),
  mosquitto_qos0_delivered: theirs[0].received / Math.max(1, theirs[0].published),
  rss_mb: Math.round(ours.rssMb),
  quick,
}
console.log(JSON.stringify(result))
