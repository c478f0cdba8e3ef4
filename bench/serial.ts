/**
 * npm run bench:serial [-- --quick]
 *
 * Can the serial input keep up with a line that is never idle? A patrol-wand dock uploads stored
 * scans through a socat pty pair into a real gateway process, paced to what a 115200-baud 8N1
 * line carries (11,520 bytes/s: a pty itself has no baud rate), with up to 64 frames awaiting
 * their GWACK. If the gateway's commit-then-ACK path were slower than the line, the window would
 * fill, the dock would wait, and the line utilisation would fall below 1.
 *
 * The gateway runs from the production bundle (dist/gateway.mjs) as its own process with the demo office plus the wand; its
 * CPU time comes from /proc. The uplink points at nothing, so every scan stays in the outbox,
 * where the bench counts them afterwards. A second run without pacing shows the headroom.
 *
 * Last line: {"bench":"serial","frames_per_s":…,"line_utilisation":…,"cpu_percent":…,"frames_sent":…,
 *             "frames_acked":…,"lost":…,"committed":…,"unpaced_frames_per_s":…,…}
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { readConfigFile } from '../common/config-file.ts'
import { startPtyPair } from '../devices/serial/pty-pair.ts'
import { lineRate, SerialEnd } from '../devices/serial/serial-end.ts'
import { dockUpload, PatrolWand, type UploadResult } from '../devices/serial/wand-dock.ts'
import { DEMO_CONFIG_PATH } from '../gateway/config/load.ts'
import { cpuSeconds, peakRssMb } from './lib/proc.ts'
import { GatewayProcess, ports } from './lib/stack.ts'

const quick = process.argv.includes('--quick')
const BAUD = 115_200
const seconds = quick ? 12 : 60
const window = 64
const TAGS = ['04A1B2C3D4E5F6', '04A1B2C3D4E5F7', '04A1B2C3D4E5F8', '04A1B2C3D4E5F9']
const bytesPerSecond = lineRate(BAUD) // 11,520

const twoDaysAgo = Date.now() - 2 * 86_400_000

/** A wand holding `n` scans a second apart from `startS` after two days ago, as after a long night's rounds. */
function loadedWand(n: number, startS: number): PatrolWand {
  const wand = new PatrolWand('wand-01', 'staff-li-na')
  for (let i = 0; i < n; i++) wand.store(TAGS[i % 4], twoDaysAgo + (startS + i) * 1000)
  return wand
}

async function upload(end: SerialEnd, wand: PatrolWand, win: number): Promise<UploadResult & { bytes: number; frames: number; ackMs: number[] }> {
  const frames = wand.records.size
  const bytes0 = end.bytesWritten
  // From the frame's last byte handed to the pty to its GWACK: parse, rules, group commit, reply.
  const sentAt = new Map<number, number>()
  const ackMs: number[] = []
  const result = await dockUpload(end, wand, {
    window: win,
    timeoutMs: 5000,
    onSent: (scan) => sentAt.set(scan.seq, performance.now()),
    onReply: (_reply, scan) => ackMs.push(performance.now() - sentAt.get(scan.seq)!),
  })
  return { ...result, bytes: end.bytesWritten - bytes0, frames, ackMs: ackMs.sort((a, b) => a - b) }
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN

const dir = mkdtempSync(join(tmpdir(), 'gridwatch-bench-serial-'))
const pair = await startPtyPair(join(dir, 'gw'), join(dir, 'dock'))
const [mqttPort, httpPort] = await ports(2)
const demo = readConfigFile(DEMO_CONFIG_PATH) as { devices: unknown[] }
const gw = new GatewayProcess('dist', mqttPort, httpPort, 'http://127.0.0.1:9', {
  // wand-01 (via serial) is one of the demo office's devices.
  devices: demo.devices,
  inputs: { serial: [{ id: 'dock', path: pair.gateway, baudRate: BAUD, devices: ['wand-01'] }] },
})

let out: Record<string, unknown> | undefined
try {
  await gw.start()
  const pid = gw.child!.proc.pid!
  const paced = await SerialEnd.open(pair.device, { baudRate: BAUD, bytesPerSecond })

  // Warm-up: JIT, SQLite page cache, the first commits.
  const warm = await upload(paced, loadedWand(300, 0), window)
  if (warm.acked !== 300) throw new Error(`warm-up: ${warm.acked} of 300 acknowledged`)

  // Enough stored scans to keep the line full for `seconds` (a wand scan is ~70 bytes on the wire).
  const n = Math.ceil((seconds * bytesPerSecond) / 70)
  const cpu0 = cpuSeconds(pid)
  const run = await upload(paced, loadedWand(n, 1000), window)
  const cpu = (cpuSeconds(pid) - cpu0) / run.seconds
  await paced.close()

  // Headroom: the same upload as fast as the pty takes it.
  const unpaced = await SerialEnd.open(pair.device, { baudRate: BAUD })
  const free = await upload(unpaced, loadedWand(quick ? 3000 : 10_000, 2000 + n), 256)
  await unpaced.close()

  const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()
  const rejectedOnLine = [...metrics.matchAll(/gateway_input_rejected_total\{input="serial",[^}]*\} (\d+)/g)].reduce((a, m) => a + Number(m[1]), 0)
  const db = new Database(join(gw.dir, 'data', 'outbox.db'), { readonly: true })
  const committed = (db.prepare("SELECT count(*) AS n FROM outbox WHERE kind = 'scan' AND device = 'wand-01'").get() as { n: number }).n
  db.close()
  const expected = warm.frames + run.frames + free.frames

  const framesPerS = run.acked / run.seconds
  const utilisation = run.bytes / run.seconds / bytesPerSecond
  const lost = run.frames - run.acked - run.naked.length
  console.log(`serial bench (${quick ? 'quick' : 'full'}): wand dock upload through a socat pty pair at ${BAUD} baud 8N1 (${bytesPerSecond} bytes/s), window ${window}`)
  console.log(`  paced     ${run.frames} frames in ${run.seconds.toFixed(1)} s: ${framesPerS.toFixed(0)} frames/s, line ${(utilisation * 100).toFixed(1)}% busy, ${run.acked} ACKed, ${run.naked.length} NAKed, ${lost} lost, ${run.resent} resent`)
  console.log(`  ACK after ${percentile(run.ackMs, 0.5).toFixed(1)} ms median, ${percentile(run.ackMs, 0.99).toFixed(1)} ms p99 (frame on the wire → committed → GWACK back)`)
  console.log(`  gateway   CPU ${(cpu * 100).toFixed(1)}% of a core while the line was full, peak RSS ${peakRssMb(pid).toFixed(0)} MB`)
  console.log(`  unpaced   ${free.frames} frames in ${free.seconds.toFixed(2)} s: ${(free.acked / free.seconds).toFixed(0)} frames/s (${((free.bytes / free.seconds / bytesPerSecond) || 0).toFixed(1)}× a 115200-baud line)`)
  console.log(`  outbox    ${committed} of ${expected} uploaded scans committed; ${rejectedOnLine} frames rejected on the line`)
  out = {
    bench: 'serial',
    frames_per_s: Math.round(framesPerS),
    line_utilisation: Number(utilisation.toFixed(3)),
    cpu_percent: Number((cpu * 100).toFixed(1)),
    frames_sent: run.frames,
    frames_acked: run.acked,
    lost,
    resent: run.resent,
    ack_p50_ms: Number(percentile(run.ackMs, 0.5).toFixed(1)),
    ack_p99_ms: Number(percentile(run.ackMs, 0.99).toFixed(1)),
    all_committed: committed === expected,
    committed,
    unpaced_frames_per_s: Math.round(free.acked / free.seconds),
    rss_mb: Math.round(peakRssMb(pid)),
    baud: BAUD,
    seconds: Number(run.seconds.toFixed(1)),
  }
} finally {
  await gw.kill('SIGTERM')
  gw.cleanup()
  await pair.close()
  rmSync(dir, { recursive: true, force: true })
}
console.log(JSON.stringify(out))
