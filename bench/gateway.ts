/**
 * npm run bench:gateway [-- --quick]
 *
 * Sustained QoS 1 ingest from simulated devices into the gateway's durable outbox, against
 * Mosquitto's plain pass-through of the same load (publisher → Mosquitto → mosquitto_sub) in the
 * same run. Both brokers face the same load generator (devices/load/mqtt-load.ts, its own
 * process): 8 clients, 100 unacknowledged messages each at most.
 *
 * The gateway runs as in production: the bundle from `npm run build` (dist/gateway.mjs), its own
 * process, with the memory settings of deploy/gridwatch-gateway.service, every
 * message authenticated, ACL-checked, validated, run through the rules and committed to SQLite
 * (WAL, synchronous=FULL) before its PUBACK. The uplink points at nothing, so this measures
 * ingest, not forwarding (bench:alert-latency and the chaos runs cover the uplink).
 *
 * Last line: {"bench":"gateway","msgs_per_s":…,"rss_mb":…,"mosquitto_msgs_per_s":…,"ratio":…}
 */
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { demoDevicePassword } from '../devices/demo-credentials.ts'
import { cpuSeconds, peakRssMb, runForJson, startProcess } from './lib/proc.ts'
import { startMosquitto } from './lib/mosquitto.ts'
import { GatewayProcess, ports } from './lib/stack.ts'

const quick = process.argv.includes('--quick')
const seconds = quick ? 8 : 20
const warmup = quick ? 2 : 4
const clients = 8
const window = 100
const dist = fileURLToPath(new URL('../dist/', import.meta.url))
const loadScript = join(dist, 'mqtt-load.mjs')

interface LoadResult {
  acked: number
  seconds: number
  msgs_per_s: number
  /** The load generator's own CPU, % of one core: near 100 it, not the broker, sets the pace. */
  cpu_percent: number
}

function load(url: string, secs: number, auth: boolean): Promise<LoadResult> {
  const args = [loadScript, '--url', url, '--clients', String(clients), '--seconds', String(secs), '--qos', '1', '--window', String(window)]
  if (auth) args.push('--device', 'gas-002', '--password', demoDevicePassword('gas-002'))
  return runForJson<LoadResult>(process.execPath, args)
}

async function benchGateway() {
  const [mqttPort, httpPort] = await ports(2)
  // The demo office with every reading forwarded (no deadband): this measures the durable path.
  const gw = new GatewayProcess('dist', mqttPort, httpPort, 'http://127.0.0.1:9')
  try {
    await gw.start()
    const pid = gw.child!.proc.pid!
    const url = `mqtt://127.0.0.1:${mqttPort}`
    await load(url, warmup, true)
    const cpu0 = cpuSeconds(pid)
    const result = await load(url, seconds, true)
    const cpu = (cpuSeconds(pid) - cpu0) / result.seconds
    const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()
    // The sum of a metric's samples (over all its labels) in the exposition text.
    const metric = (name: string) =>
      metrics
        .split('\n')
        .filter((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'))
        .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)
    return {
      ...result,
      loadCpu: result.cpu_percent,
      rssMb: peakRssMb(pid),
      cpuPercent: cpu * 100,
      rowsPerCommit: metric('gateway_outbox_commit_rows_sum') / metric('gateway_outbox_commit_rows_count'),
      // Load past the quota is part of the run (the uplink points at nothing): say how much.
      evicted: metric('gateway_outbox_rows_evicted_total'),
      walRestarts: metric('gateway_outbox_wal_restart_seconds_count'),
      walRestartMs: (metric('gateway_outbox_wal_restart_seconds_sum') / Math.max(1, metric('gateway_outbox_wal_restart_seconds_count'))) * 1000,
    }
  } finally {
    await gw.kill('SIGTERM')
    gw.cleanup()
  }
}

async function benchMosquitto() {
  const mosquitto = await startMosquitto()
  // The consumer that makes it a pass-through: every message is delivered onward at QoS 1.
  const sink = startProcess('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(mosquitto.port), '-q', '1', '-t', 'dev/#', '-i', 'bench-sink'])
  try {
    await new Promise((r) => setTimeout(r, 300))
    const url = `mqtt://127.0.0.1:${mosquitto.port}`
    await load(url, warmup, false)
    const cpu0 = cpuSeconds(mosquitto.child.proc.pid!)
    const result = await load(url, seconds, false)
    const cpu = (cpuSeconds(mosquitto.child.proc.pid!) - cpu0) / result.seconds
    return { ...result, loadCpu: result.cpu_percent, rssMb: peakRssMb(mosquitto.child.proc.pid!), cpuPercent: cpu * 100 }
  } finally {
    await sink.stop()
    await mosquitto.stop()
  }
}

const ours = await benchGateway()
const theirs = await benchMosquitto()
const ratio = ours.msgs_per_s / theirs.msgs_per_s

console.log(`gateway bench (${quick ? 'quick' : 'full'}: ${seconds} s per side, ${clients} QoS 1 publishers, window ${window})`)
console.log(`  load generator     ${ours.loadCpu}% / ${theirs.loadCpu}% CPU (gateway run / Mosquitto run)`)
console.log(`  GridWatch gateway  ${ours.msgs_per_s.toLocaleString('en')} msgs/s into the outbox, peak RSS ${ours.rssMb.toFixed(0)} MB, CPU ${ours.cpuPercent.toFixed(0)}% of a core, ${ours.rowsPerCommit.toFixed(0)} rows per group commit`)
console.log(`                     ${ours.evicted.toLocaleString('en')} readings evicted at the outbox quota, ${ours.walRestarts} WAL restarts at ${ours.walRestartMs.toFixed(1)} ms mean on the event loop`)
console.log(`  Mosquitto          ${theirs.msgs_per_s.toLocaleString('en')} msgs/s pass-through to mosquitto_sub, peak RSS ${theirs.rssMb.toFixed(0)} MB, CPU ${theirs.cpuPercent.toFixed(0)}%`)
console.log(`  ratio              ${ratio.toFixed(2)}   (goals: ≥ 40,000 msgs/s, ratio ≥ 0.6, RSS ≤ 150 MB)`)
console.log(
  JSON.stringify({
    bench: 'gateway',
    msgs_per_s: ours.msgs_per_s,
    rss_mb: Math.round(ours.rssMb),
    mosquitto_msgs_per_s: theirs.msgs_per_s,
    ratio: Number(ratio.toFixed(3)),
    cpu_percent: Math.round(ours.cpuPercent),
    load_cpu_percent: ours.loadCpu,
    mosquitto_load_cpu_percent: theirs.loadCpu,
    rows_per_commit: Math.round(ours.rowsPerCommit),
    evicted_rows: ours.evicted,
    wal_restarts: ours.walRestarts,
    wal_restart_ms_mean: Number(ours.walRestartMs.toFixed(2)),
    seconds,
  }),
)
