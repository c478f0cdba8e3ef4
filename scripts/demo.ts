/**
 * `npm run demo`: the whole street-office stack on one machine, on embedded defaults.
 *
 *   cloud-api   (child process, embedded SQLite store)      http://127.0.0.1:8080
 *   gateway     (child process, with its MQTT broker)      mqtt://127.0.0.1:1883, http://127.0.0.1:8081
 *               and its camera listener (ISAPI push)       http://127.0.0.1:8082/ISAPI/Event/notification/alert
 *   devices     (in this process: gas detectors, a patrol phone, an AI camera over real MQTT, and
 *               an ISAPI camera pushing XML with a snapshot over HTTP)
 *
 * It prints what reaches the cloud, live, from the cloud's own event stream. Ctrl-C stops the
 * devices, lets the gateway drain its outbox for up to 3 s (the rest stays on disk for next
 * time), then stops the cloud. Children also exit on their own if this process dies.
 *
 *   npm run demo -- --fresh    start from empty data directories
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, mkdirSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import { preferPort } from '../common/ports.ts'
import { readSse, type SseEvent } from '../common/sse.ts'
import type { Envelope } from '../contracts/envelope.ts'
import { DEMO_GATEWAY_TOKEN } from '../devices/demo-credentials.ts'
import { runDemoScenario, type RunningScenario } from '../devices/demo-scenario.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const varDir = join(root, 'var')
const tty = process.stdout.isTTY
const paint = (code: string, text: string) => (tty ? `\x1b[${code}m${text}\x1b[0m` : text)
const started = Date.now()
const clock = () => `+${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s`
const say = (line: string) => process.stdout.write(`${paint('2', clock())}  ${line}\n`)

interface Child {
  name: string
  proc: ChildProcess
  exited: Promise<number | null>
}

function startChild(name: string, script: string, env: Record<string, string>): Child {
  const log = createWriteStream(join(varDir, 'demo-logs', `${name}.log`), { flags: 'a' })
  const proc = spawn(process.execPath, ['--import', 'tsx', join(root, script)], {
    cwd: root,
    env: { ...process.env, ...env },
    // The IPC channel is the children's lifeline: when this process dies, they see 'disconnect'.
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  })
  proc.stdout!.pipe(log)
  proc.stderr!.pipe(log)
  // Surface the child's own warnings and errors in the feed, compactly.
  let partial = ''
  proc.stdout!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) {
      try {
        const entry = JSON.parse(line) as { level?: string; msg?: string; code?: string }
        if (entry.level === 'error' || entry.level === 'fatal') say(paint('31', `${name} ${entry.level}: ${entry.msg} ${entry.code ?? ''}`))
      } catch {
        // not a JSON log line
      }
    }
  })
  proc.stderr!.on('data', (chunk: Buffer) => process.stderr.write(paint('31', `[${name}] ${chunk.toString()}`)))
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  return { name, proc, exited }
}

async function waitReady(url: string, child: Child, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let exited = false
  void child.exited.then(() => (exited = true))
  while (Date.now() < deadline && !exited) {
    try {
      if ((await fetch(url)).ok) return
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`${child.name} did not become ready at ${url} (see var/demo-logs/${child.name}.log)`)
}

function describe(e: Envelope): string | undefined {
  switch (e.kind) {
    case 'alert': {
      const p = e.payload
      const color = p.state === 'cleared' ? '32' : p.severity === 'critical' ? '1;31' : p.severity === 'major' ? '33' : '36'
      return paint(color, `ALERT ${p.state.padEnd(7)} ${p.severity.padEnd(8)} ${p.type.padEnd(19)} ${e.device.padEnd(10)} ${p.message}`)
    }
    case 'scan':
      return `scan   ${e.device.padEnd(10)} ${e.payload.checkpoint ?? `unknown tag ${e.payload.tag}`} by ${e.payload.staff ?? '?'}`
    case 'camera':
      return `camera ${e.device.padEnd(10)} ${e.payload.event} ${Math.round(e.payload.confidence * 100)}% ${e.payload.region ?? ''}`
    case 'report':
      return e.payload.type === 'sos' ? `report ${e.device.padEnd(10)} sos ${e.payload.text ?? ''}` : undefined
    case 'incident':
      return paint('35', `INCIDENT ${e.payload.category.padEnd(12)} for the ${e.payload.level} (${e.grid ?? 'no grid'}): ${e.payload.description}`)
    case 'aggregate':
      return paint('2', `minute ${e.device.padEnd(10)} ${e.payload.quantity} min ${e.payload.min} max ${e.payload.max} mean ${e.payload.mean} (${e.payload.count} readings)`)
    case 'status':
      return `status ${e.device.padEnd(10)} ${e.payload.state}`
    default:
      return undefined
  }
}

async function main(): Promise<void> {
  if (process.argv.includes('--fresh')) {
    rmSync(join(varDir, 'gateway-demo'), { recursive: true, force: true })
    rmSync(join(varDir, 'cloud-demo'), { recursive: true, force: true })
  }
  mkdirSync(join(varDir, 'demo-logs'), { recursive: true })
  const [cloudPort, mqttPort, gatewayHttpPort, cameraPort] = [await preferPort(8080), await preferPort(1883), await preferPort(8081), await preferPort(8082)]
  const cloudUrl = `http://127.0.0.1:${cloudPort}`
  const cameraUrl = `http://127.0.0.1:${cameraPort}/ISAPI/Event/notification/alert`

  console.log(paint('1', 'GridWatch demo: one street office (汤泉街道, demo), its gateway, and the linked-service center\n'))
  const cloud = startChild('cloud-api', 'cloud-api/main.ts', { PORT: String(cloudPort), STORE: 'sqlite', SQLITE_PATH: join(varDir, 'cloud-demo', 'events.db') })
  const gateway = startChild('gateway', 'gateway/main.ts', {
    GRIDWATCH_UPLINK_URL: cloudUrl,
    GRIDWATCH_UPLINK_TOKEN: DEMO_GATEWAY_TOKEN,
    GRIDWATCH_MQTT_PORT: String(mqttPort),
    GRIDWATCH_GATEWAY_HTTP_PORT: String(gatewayHttpPort),
    GRIDWATCH_CAMERA_PORT: String(cameraPort),
    GRIDWATCH_DATA_DIR: join(varDir, 'gateway-demo'),
  })
  const children = [gateway, cloud]

  let scenario: RunningScenario | undefined
  let feed: ReturnType<typeof readSse> | undefined
  let stopping = false
  const stop = async (code: number) => {
    if (stopping) return
    stopping = true
    say('stopping: devices, then the gateway (drains up to 3 s), then the cloud API')
    await scenario?.stop()
    for (const child of children) {
      if (child.proc.exitCode === null) child.proc.kill('SIGTERM')
      await child.exited
    }
    feed?.close()
    say('stopped. Logs: var/demo-logs/; the gateway outbox (var/gateway-demo/) keeps anything not yet delivered.')
    process.exit(code)
  }
  process.on('SIGINT', () => void stop(0))
  process.on('SIGTERM', () => void stop(0))
  for (const child of children) {
    void child.exited.then((code) => {
      if (!stopping) {
        say(paint('31', `${child.name} exited unexpectedly (code ${code}); see var/demo-logs/${child.name}.log`))
        void stop(1)
      }
    })
  }

  try {
    await Promise.all([waitReady(`${cloudUrl}/readyz`, cloud), waitReady(`http://127.0.0.1:${gatewayHttpPort}/readyz`, gateway)])
  } catch (err) {
    say(paint('31', (err as Error).message))
    return stop(1)
  }

  let readings = 0
  let lastGas = ''
  feed = readSse(`${cloudUrl}/v1/stream?kinds=alert,scan,camera,report,status,reading,incident,aggregate`, (event: SseEvent) => {
    const e = JSON.parse(event.data) as Envelope
    if (e.kind === 'reading') {
      readings++
      if (e.device === 'gas-001') lastGas = `${e.payload.value} ${e.payload.unit}`
      return
    }
    const line = describe(e)
    if (line) say(`${paint('2', 'cloud ←')} ${line}`)
  })
  await feed.opened
  // The stream ends when the cloud stops; that is expected during shutdown and reported otherwise.
  feed.done.catch((err: unknown) => {
    if (!stopping) say(paint('31', `live stream from the cloud ended: ${(err as Error).message}`))
  })
  const summary = setInterval(() => say(paint('2', `cloud ← ${readings} readings stored so far (gas-001 now ${lastGas || '-'})`)), 3000)
  summary.unref()

  console.log(paint('1', `  Console        ${cloudUrl}/console/`) + '   sign in as center, inspector, supervisor or admin; password demo-<name>-password')
  console.log(`  Cloud API      ${cloudUrl}`)
  console.log(`  Alerts         ${cloudUrl}/v1/alerts?state=open`)
  console.log(`  API docs       ${cloudUrl}/docs   (sign in: POST /v1/session {"name":"center","password":"demo-center-password"})`)
  console.log(`  Gas series     ${cloudUrl}/v1/series?device=gas-001`)
  console.log(`  Live stream    ${cloudUrl}/v1/stream`)
  console.log(`  Gateway        http://127.0.0.1:${gatewayHttpPort}/healthz   metrics: /metrics`)
  console.log(`  MQTT broker    mqtt://127.0.0.1:${mqttPort}  (devices log in with their own credentials)`)
  console.log(`  Camera push    ${cameraUrl}  (ISAPI EventNotificationAlert; cameras log in)`)
  console.log(`  Try:           curl -s '${cloudUrl}/v1/alerts' | head -c 2000\n`)

  scenario = await runDemoScenario(`mqtt://127.0.0.1:${mqttPort}`, (err) => say(paint('31', `device error: ${err.message}`)), cameraUrl)
  say('devices connected; the scenario runs for about 10 s, then the office goes on quietly. Ctrl-C to stop.')
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
