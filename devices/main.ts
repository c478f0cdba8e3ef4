/**
 * `npm run devices -- ...`: simulated field equipment against a running gateway.
 *
 *   npm run devices -- --list
 *   npm run devices -- --scenario gas-leak [--url mqtt://127.0.0.1:1883]
 *   npm run devices -- --scenario wand-upload --serial /dev/ttyUSB1 [--baud 115200]
 *   npm run devices -- --scenario isapi-intrusion [--camera-url http://127.0.0.1:8082/ISAPI/Event/notification/alert]
 *   npm run devices -- --load 5000 --rate 1 [--seconds 60] [--qos 0|1] [--kinds reading,scan,camera]
 *                      [--prefix load-] [--connect-rate 20]
 *   npm run devices -- --office-yaml 5000 > load-devices.yaml
 *   npm run devices -- --serve modbus-detectors --serial /dev/ttyUSB2 [--units 1,2] [--baud 9600] [--gas-leak]
 *   npm run devices -- --serve opcua-plant [--port 4840] [--count 10000] [--change-ms 1000]
 *
 * Scenarios use the demo office's devices and demo passwords (`npm run demo` runs that office).
 * A load run uses devices load-0001 ... with the same password scheme; the gateway must know
 * them: `--office-yaml N` prints their `devices:` section for a load-test office config.
 * The load run prints a summary and, as its last line, one JSON object.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { argValue } from '../common/process.ts'
import { startGasDetectors } from './modbus/gas-detector-slave.ts'
import { officeYaml, runFleet, type LoadKind } from './load/fleet.ts'
import { findScenario, scenarios, type RunningScenario } from './scenarios/index.ts'

const argv = process.argv.slice(2)
const url = argValue(argv, '--url') ?? process.env.GRIDWATCH_MQTT_URL ?? 'mqtt://127.0.0.1:1883'
const say = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)}  ${line}\n`)

function usage(problem?: string): never {
  if (problem) process.stderr.write(`${problem}\n\n`)
  process.stderr.write(
    [
      'usage: npm run devices -- --scenario <name> [--url mqtt://host:port] [--serial <path> --baud <rate>] [--camera-url <url>]',
      '       npm run devices -- --load <devices> --rate <msgs per device per s> [--seconds 60] [--qos 0|1] [--kinds reading,scan,camera]',
      '       npm run devices -- --office-yaml <devices>',
      '       npm run devices -- --serve modbus-detectors --serial <path> [--units 1,2] [--baud 9600] [--gas-leak]',
      '       npm run devices -- --serve opcua-plant [--port 4840] [--count N] [--change-ms 1000]',
      '       npm run devices -- --list',
      '',
      'scenarios:',
      ...scenarios.map((s) => `  ${s.name.padEnd(16)} ${s.expect}`),
    ].join('\n') + '\n',
  )
  process.exit(problem ? 2 : 0)
}

async function playScenario(name: string): Promise<void> {
  const scenario = findScenario(name) ?? usage(`no scenario "${name}"`)
  say(`scenario ${scenario.name} against ${url}`)
  say(`expect: ${scenario.expect}`)
  let running: RunningScenario | undefined
  const stop = async (why: string) => {
    say(why)
    await running?.stop()
    process.exit(0)
  }
  process.once('SIGINT', () => void stop('stopped'))
  const serialPath = argValue(argv, '--serial')
  const baud = argValue(argv, '--baud')
  const cameraUrl = argValue(argv, '--camera-url')
  running = await scenario.run({
    mqttUrl: url,
    onError: (err) => say(`error: ${err.message}`),
    say,
    ...(serialPath ? { serialPath } : {}),
    ...(baud ? { baudRate: Number(baud) } : {}),
    ...(cameraUrl ? { cameraUrl } : {}),
  })
  await running.done
  await stop('scenario finished')
}

async function playLoad(devices: number): Promise<void> {
  const rate = Number(argValue(argv, '--rate') ?? 1)
  const seconds = Number(argValue(argv, '--seconds') ?? 60)
  const qos = Number(argValue(argv, '--qos') ?? 1)
  const kinds = (argValue(argv, '--kinds') ?? 'reading').split(',') as LoadKind[]
  const connectRate = Number(argValue(argv, '--connect-rate') ?? 20)
  if (!(devices >= 1 && rate > 0 && seconds > 0 && (qos === 0 || qos === 1) && connectRate > 0)) usage('--load, --rate, --seconds and --connect-rate must be positive; --qos 0 or 1')
  if (!kinds.every((k) => ['reading', 'scan', 'camera'].includes(k))) usage('--kinds is a list of reading, scan, camera')
  say(`${devices} devices × ${rate}/s (${kinds.join(', ')}, QoS ${qos}) for ${seconds} s against ${url}; connecting at ${connectRate}/s`)
  const result = await runFleet({ url, devices, rate, seconds, qos: qos, kinds, prefix: argValue(argv, '--prefix') ?? 'load-', connectRate, onProgress: say })
  say(`${result.connected} connected (${result.connect_failures} refused), ${result.acked} of ${result.sent} acknowledged, ${result.msgs_per_s} msgs/s of ${result.offered_per_s} offered`)
  process.stdout.write(JSON.stringify({ bench: 'devices-load', url, rate, qos, kinds, ...result }) + '\n')
  if (result.connected === 0) process.exit(1)
}

/**
 * Equipment the gateway polls or subscribes to, rather than equipment that sends: Modbus RTU gas
 * detectors answering on a serial line (docs/inputs/modbus.md's register map), or an OPC UA plant
 * server (devices/opcua/serve.ts, in a process of its own). Runs until Ctrl-C.
 */
async function serve(what: string): Promise<void> {
  if (what === 'opcua-plant') {
    const args = ['--port', '--count', '--change-ms', '--pki'].flatMap((flag) => {
      const value = argValue(argv, flag)
      return value === undefined ? [] : [flag, value]
    })
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./opcua/serve.ts', import.meta.url)), ...args], { stdio: 'inherit' })
    process.once('SIGINT', () => child.kill('SIGTERM'))
    child.once('exit', (code) => process.exit(code ?? 0))
    return
  }
  if (what !== 'modbus-detectors') usage(`nothing to serve called "${what}"`)
  const path = argValue(argv, '--serial') ?? usage('--serve modbus-detectors needs --serial <path>')
  const units = (argValue(argv, '--units') ?? '1').split(',').map(Number)
  const { line, detectors } = await startGasDetectors(path, units, { baudRate: Number(argValue(argv, '--baud') ?? 9600), gas: 3 })
  say(`gas detectors at units ${units.join(', ')} answering on ${path} (FC04 gas ×0.1 %LEL at 0, status bits at 1)`)
  if (argv.includes('--gas-leak')) {
    // Unit 1 leaks: up 2 %LEL a second to 60, then back down, then again.
    let gas = 3
    let rising = true
    setInterval(() => {
      gas += rising ? 2 : -2
      if (gas >= 60) rising = false
      if (gas <= 3) rising = true
      detectors[0].setGas(gas)
    }, 1000)
  }
  line.on('request', (r) => {
    if (r.reply !== 'data') say(`unit ${r.unit}: ${r.reply}`)
  })
  process.once('SIGINT', () => void line.close().then(() => process.exit(0)))
}

const scenarioName = argValue(argv, '--scenario')
const load = argValue(argv, '--load')
const yamlCount = argValue(argv, '--office-yaml')
const serveWhat = argValue(argv, '--serve')
if (argv.includes('--list') || argv.includes('--help')) usage()
else if (scenarioName) await playScenario(scenarioName)
else if (load) await playLoad(Number(load))
else if (serveWhat) await serve(serveWhat)
else if (yamlCount) process.stdout.write(await officeYaml(Number(yamlCount), argValue(argv, '--prefix') ?? 'load-'))
else usage('say what to run')
