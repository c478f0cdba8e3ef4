/**
 * npm run chaos:flood [-- --messages N] [-- --unprotected] [-- --quick]
 *
 * The issue's flood: 8 MQTT.js publishers sending QoS 0 flat out through the broker to one
 * wildcard subscriber on loopback. Aedes 1.2.0 with its in-memory emitter was seen to die after
 * about 1.3 M messages (RangeError: Maximum call stack size exceeded in mqemitter/qlobber).
 *
 * While the flood runs, a canary device publishes QoS 1 to a persistent-session subscriber: every
 * canary the broker acknowledged must arrive. The broker runs as its own process (the bundle),
 * its RSS is sampled throughout, and afterwards a new client must still be served.
 *
 * --unprotected turns the broker's rate and routing limits off, to show what they prevent.
 *
 * Last line: {"bench":"flood","messages":…,"survived":…,"flood_msgs_per_s":…,"delivered_to_wildcard":…,
 *             "canaries_acked":…,"canaries_lost":…,"peak_rss_mb":…,"served_after":…}
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { brokerDefaults } from '../broker/config.ts'
import { freePort } from '../common/ports.ts'
import { argValue } from '../common/process.ts'
import { hashPassword } from '../common/secrets.ts'
import { startBrokerProcess, writeBrokerConfig } from './lib/broker-process.ts'
import { runForJson } from './lib/proc.ts'
import { brokerEnv, brokerNodeFlags } from './lib/runtime.ts'

export interface FloodResult {
  bench: 'flood'
  messages: number
  protected: boolean
  survived: boolean
  exit: string | null
  flood_msgs_per_s: number
  delivered_to_wildcard: number
  canaries_acked: number
  canaries_lost: number
  peak_rss_mb: number
  served_after: boolean
}

const password = (id: string) => `flood-${id}-password`

export async function runFlood(options: { messages: number; unprotected?: boolean; build?: 'source' | 'dist'; log?: (line: string) => void }): Promise<FloodResult> {
  const build = options.build ?? 'dist'
  const log = options.log ?? (() => {})
  const dir = mkdtempSync(join(tmpdir(), 'gridwatch-flood-'))
  const port = await freePort()
  const limits = options.unprotected
    ? { ...brokerDefaults.limits, messagesPerSecondPerClient: 1e9, maxInFlightRouted: 1e9 }
    : brokerDefaults.limits
  const config = writeBrokerConfig(dir, {
    id: 'flood-broker',
    broker: { ...brokerDefaults, limits, tcp: { host: '127.0.0.1', port }, persistence: { path: join(dir, 'broker.db'), synchronous: 'full' } },
    devices: await Promise.all(
      ['flood-001', 'canary-001', 'gw-flood'].map(async (id) => ({ id, secret: await hashPassword(password(id)), ...(id.startsWith('gw') ? { role: 'gateway' } : {}) })),
    ),
    http: null,
  })
  const broker = await startBrokerProcess(config, build === 'dist' ? { build, nodeFlags: brokerNodeFlags(), env: brokerEnv() } : { build })
  const pid = broker.child.pid!
  let exit: string | null = null
  broker.child.once('exit', (code, signal) => (exit = signal ?? String(code)))
  let peakRss = 0
  const sampler = setInterval(() => {
    try {
      const kb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0)
      peakRss = Math.max(peakRss, kb / 1024)
    } catch {
      // The process is gone; `exit` says how.
    }
  }, 250)
  const url = `mqtt://127.0.0.1:${port}`
  const gw = { username: 'gw-flood', password: password('gw-flood'), reconnectPeriod: 0 }
  try {
    // The wildcard subscriber of the issue, and a persistent one for the canaries.
    const wildcard = await mqtt.connectAsync(url, { ...gw, clientId: 'wildcard' })
    await wildcard.subscribeAsync('dev/#', { qos: 0 })
    let delivered = 0
    wildcard.on('message', () => delivered++)
    const canarySub = await mqtt.connectAsync(url, { ...gw, clientId: 'canary-sub', clean: false })
    await canarySub.subscribeAsync('dev/canary-001/#', { qos: 1 })
    const canariesSeen = new Set<string>()
    canarySub.on('message', (_t, p) => canariesSeen.add(p.toString()))

    const canary = await mqtt.connectAsync(url, { username: 'canary-001', password: password('canary-001'), clientId: 'canary', reconnectPeriod: 0 })
    const acked: string[] = []
    let floodDone = false
    const canaries = (async () => {
      for (let i = 0; !floodDone; i++) {
        try {
          await canary.publishAsync('dev/canary-001/reading', String(i), { qos: 1 })
          acked.push(String(i))
        } catch {
          return
        }
        await new Promise((r) => setTimeout(r, 5))
      }
    })()

    log(`flooding ${options.messages} QoS 0 messages from 8 publishers${options.unprotected ? ' (limits off)' : ''}`)
    const t0 = performance.now()
    const loadEntry = build === 'dist' ? ['dist/mqtt-load.mjs'] : ['--import', 'tsx', 'devices/load/mqtt-load.ts']
    const load = await runForJson<{ sent: number; seconds: number }>(process.execPath, [
      ...loadEntry, '--url', url, '--clients', '8', '--qos', '0', '--window', '100',
      '--messages', String(options.messages), '--device', 'flood-001', '--password', password('flood-001'),
    ]).catch((err: Error) => ({ sent: 0, seconds: (performance.now() - t0) / 1000, error: err.message }))
    floodDone = true
    await canaries
    // The broker works off what it has queued; that drain is where an unbounded queue overflowed
    // the stack. Wait until the wildcard subscriber has gone quiet for a second.
    for (let quiet = 0, last = -1; quiet < 10 && exit === null; ) {
      quiet = delivered === last ? quiet + 1 : 0
      last = delivered
      await new Promise((r) => setTimeout(r, 100))
    }
    // Deliveries in flight land, or the canary subscriber is shown to be short.
    for (let quiet = 0; canariesSeen.size < acked.length && quiet < 30 && exit === null; quiet++) await new Promise((r) => setTimeout(r, 100))
    const lost = acked.filter((c) => !canariesSeen.has(c)).length

    let served = false
    if (exit === null) {
      const probe = await mqtt.connectAsync(url, { username: 'canary-001', password: password('canary-001'), clientId: 'probe', reconnectPeriod: 0, connectTimeout: 5000 }).catch(() => undefined)
      if (probe) {
        served = await probe.publishAsync('dev/canary-001/reading', 'probe', { qos: 1 }).then(() => true, () => false)
        await probe.endAsync(true)
      }
    }
    await Promise.all([wildcard, canarySub, canary].map((c) => c.endAsync(true)))
    // A clean stop exits 0; a crash during the run or the stop does not.
    if (exit === null) {
      await broker.stop()
      if (exit !== '0') served = false
    }
    return {
      bench: 'flood',
      messages: options.messages,
      protected: !options.unprotected,
      survived: exit === '0',
      exit,
      flood_msgs_per_s: Math.round(load.sent / Math.max(load.seconds, 0.001)),
      delivered_to_wildcard: delivered,
      canaries_acked: acked.length,
      canaries_lost: lost,
      peak_rss_mb: Math.round(peakRss),
      served_after: served,
    }
  } finally {
    clearInterval(sampler)
    if (exit === null) await broker.kill()
    rmSync(dir, { recursive: true, force: true })
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2)
  const quick = argv.includes('--quick')
  const messages = Number(argValue(argv, '--messages') ?? (quick ? 1_500_000 : 13_000_000))
  const result = await runFlood({ messages, unprotected: argv.includes('--unprotected'), log: (l) => console.log(l) })
  console.log(
    `survived: ${result.survived}${result.exit ? ` (exit ${result.exit})` : ''}; ${result.flood_msgs_per_s} msgs/s offered; wildcard got ${result.delivered_to_wildcard}; ` +
      `canaries acked ${result.canaries_acked}, lost ${result.canaries_lost}; peak RSS ${result.peak_rss_mb} MB; served afterwards: ${result.served_after}`,
  )
  console.log(JSON.stringify(result))
}
