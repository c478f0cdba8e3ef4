/**
 * npm run bench:opcua [-- --quick] [--heap <MB>]
 *
 * 10,000 OPC UA monitored items at 1 s sampling, every value changing every second, into the
 * gateway's durable outbox. The plant server (devices/opcua/serve.ts, node-opcua) runs in a
 * process of its own, the gateway (the production bundle, dist/gateway.mjs, with the systemd
 * unit's flags and environment) in another, so the gateway's CPU and RSS are read from /proc for
 * its process alone.
 *
 * Heap: the unit caps V8's old space at 96 MB, sized for an MQTT-only office. node-opcua needs
 * ~55 MB of heap by itself, and 10,000 monitored items more; under that cap the collector runs
 * constantly (measured here: 143 % of a core). The bench therefore runs with the 192 MB that
 * docs/inputs/opcua.md tells an office with thousands of items to set; `--heap 96` shows the
 * unit as it ships.
 *
 * The items are 3,334 simulated detectors with gas, temperature and pressure each; reduction
 * sends every reading (deadband 0), so each notification is normalized, judged by the rules and
 * committed to SQLite. Goal: the gateway side under 30 % of one core.
 *
 * The server changes 10,000 values a second, but delivers fewer notifications: node-opcua's
 * server reports an exception-based variable at most once per sampling interval (a 1 s window
 * opened by the first change, later changes folded into it), and on a loaded server those
 * windows stretch past the 1 s between changes, so some changes are folded away. The gateway
 * handles every notification it gets (readings_per_s = notifications_per_s); `cpu_per_10k` scales
 * the measured CPU to 10,000 notifications a second, assuming it grows linearly.
 *
 * Last line: {"bench":"opcua","items":10000,"notifications_per_s":…,"readings_per_s":…,"cpu_percent":…,"rss_mb":…,…}
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { readConfigFile } from '../common/config-file.ts'
import { manyVariables } from '../devices/opcua/plant-server.ts'
import { DEMO_CONFIG_PATH } from '../gateway/config/load.ts'
import { cpuSeconds, peakRssMb, startProcess } from './lib/proc.ts'
import { GatewayProcess, ports, waitUntil } from './lib/stack.ts'

const quick = process.argv.includes('--quick')
/** --heap <MB>: the gateway's V8 old-space cap (the unit ships 96). */
const heapArg = process.argv.indexOf('--heap')
const heapMb = heapArg > 0 ? Number(process.argv[heapArg + 1]) : 192
const ITEMS = 10_000
const seconds = quick ? 8 : 30
const warmup = quick ? 2 : 8
const root = fileURLToPath(new URL('../', import.meta.url))

async function main() {
  const [plantPort, mqttPort, httpPort] = await ports(3)
  const pki = mkdtempSync(join(tmpdir(), 'gridwatch-bench-plant-'))
  const plant = startProcess(process.execPath, ['--import', 'tsx', join(root, 'devices/opcua/serve.ts'), '--port', String(plantPort), '--count', String(ITEMS), '--change-ms', '1000', '--pki', pki], { cwd: root })
  let gw: GatewayProcess | undefined
  try {
    const endpointUrl = `opc.tcp://127.0.0.1:${plantPort}/UA/Plant`
    const variables = manyVariables(ITEMS)
    const demoDevices = (readConfigFile(DEMO_CONFIG_PATH) as { devices: unknown[] }).devices
    const deviceOf = (i: number) => `plant-${String(Math.floor(i / 3) + 1).padStart(4, '0')}`
    const devices = [...new Set(variables.map((_, i) => deviceOf(i)))].map((id) => ({ id, type: 'gas-detector', via: 'opcua', grid: 'g-laojie-1' }))
    gw = new GatewayProcess('dist', mqttPort, httpPort, 'http://127.0.0.1:9', {
      devices: [...demoDevices, ...devices],
      reduction: { deadband: { gas: 0 } },
      inputs: {
        opcua: [
          {
            name: 'plant',
            endpointUrl,
            publishingIntervalMs: 1000,
            samplingIntervalMs: 1000,
            // A queue of 2 keeps a change that lands in the same publishing cycle as the one before.
            queueSize: 2,
            reconnect: { initialDelayMs: 500, maxDelayMs: 2000 },
            items: variables.map((v, i) => ({ nodeId: `ns=2;s=Plant.${v.name}`, device: deviceOf(i), quantity: v.quantity })),
          },
        ],
      },
    })
    gw.heapMb = heapMb
    const started = Date.now()
    // Both start at once: the gateway retries until the plant server listens (as after a power cut).
    const [, ready] = await Promise.all([
      gw.start(),
      waitUntil(
      async () => {
        if (plant.proc.exitCode !== null) throw new Error(`plant server exited: ${plant.output().slice(-2000)}`)
        const line = plant.output().split('\n').find((l) => l.startsWith('{"ready"'))
        return line ? (JSON.parse(line) as { endpointUrl: string; startMs: number }) : undefined
      },
      60_000,
      'the plant server',
      ),
    ])
    const metrics = async () => (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()
    const value = (text: string, pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? 0)
    const frames = /gateway_input_frames_total\{input="opcua",source="plant"\} (\d+)/
    const readings = /gateway_messages_received_total\{input="opcua",kind="reading"\} (\d+)/
    await waitUntil(async () => (value(await metrics(), frames) >= ITEMS ? true : undefined), 60_000, 'the initial values of every item')
    const subscribedMs = Date.now() - started
    await new Promise((r) => setTimeout(r, warmup * 1000))

    const pid = gw.child!.proc.pid!
    const before = await metrics()
    const cpu0 = cpuSeconds(pid)
    const plantCpu0 = cpuSeconds(plant.proc.pid!)
    const t0 = Date.now()
    await new Promise((r) => setTimeout(r, seconds * 1000))
    const after = await metrics()
    const elapsed = (Date.now() - t0) / 1000
    const cpuPercent = ((cpuSeconds(pid) - cpu0) / elapsed) * 100
    const plantCpuPercent = ((cpuSeconds(plant.proc.pid!) - plantCpu0) / elapsed) * 100
    const health = (await (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).json()) as {
      inputs: { opcua?: { ok: boolean; detail?: string } }
      memoryMb: { heapUsed: number }
    }
    return {
      notificationsPerS: (value(after, frames) - value(before, frames)) / elapsed,
      readingsPerS: (value(after, readings) - value(before, readings)) / elapsed,
      cpuPercent,
      rssMb: peakRssMb(pid),
      rssNowMb: Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024,
      plantCpuPercent,
      subscribedMs,
      plantStartMs: ready.startMs,
      health: health.inputs.opcua,
      heapUsedMb: health.memoryMb.heapUsed,
    }
  } finally {
    await gw?.kill('SIGTERM')
    gw?.cleanup()
    await plant.stop()
    rmSync(pki, { recursive: true, force: true })
  }
}

const r = await main()
console.log(`opcua bench (${quick ? 'quick' : 'full'}, production bundle, heap cap ${heapMb} MB: ${seconds} s measured after ${warmup} s warm-up; ${ITEMS.toLocaleString('en')} items, 1 s sampling, every value changing every second)`)
console.log(`  plant server      started in ${(r.plantStartMs / 1000).toFixed(1)} s; CPU ${r.plantCpuPercent.toFixed(1)} % of one core (its own process, not counted below)`)
console.log(`  gateway           subscribed and had every initial value ${(r.subscribedMs / 1000).toFixed(1)} s after spawn; input health ${JSON.stringify(r.health)}`)
console.log(`  notifications     ${Math.round(r.notificationsPerS).toLocaleString('en')} /s of 10,000 changes/s (the server folds some, see the header)   readings into the pipeline ${Math.round(r.readingsPerS).toLocaleString('en')} /s`)
console.log(`  gateway process   CPU ${r.cpuPercent.toFixed(1)} % of one core, RSS ${r.rssNowMb.toFixed(0)} MB at the end (heap ${r.heapUsedMb} MB), ${r.rssMb.toFixed(0)} MB peak   (goal: CPU < 30 %; scaled to 10,000/s: ${((r.cpuPercent * 10_000) / r.notificationsPerS).toFixed(1)} %)`)
console.log(
  JSON.stringify({
    bench: 'opcua',
    items: ITEMS,
    notifications_per_s: Math.round(r.notificationsPerS),
    readings_per_s: Math.round(r.readingsPerS),
    cpu_percent: Number(r.cpuPercent.toFixed(1)),
    cpu_per_10k: Number(((r.cpuPercent * 10_000) / r.notificationsPerS).toFixed(1)),
    rss_mb: Math.round(r.rssNowMb),
    heap_used_mb: r.heapUsedMb,
    heap_cap_mb: heapMb,
    peak_rss_mb: Math.round(r.rssMb),
    subscribed_s: Number((r.subscribedMs / 1000).toFixed(1)),
    plant_cpu_percent: Number(r.plantCpuPercent.toFixed(1)),
    seconds,
    goal_met: r.cpuPercent < 30 && (r.cpuPercent * 10_000) / r.notificationsPerS < 30,
  }),
)
