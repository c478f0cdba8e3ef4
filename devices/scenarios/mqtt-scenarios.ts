/**
 * Scripted field situations over MQTT, against the demo office's devices (gateway/config/
 * demo-office.yaml) and their demo passwords. Each says what the center should see, so whoever
 * runs it can check the console against it. `npm run devices -- --scenario <name>`.
 */
import { AiCamera } from '../ai-camera.ts'
import { demoDevicePassword } from '../demo-credentials.ts'
import { runDemoScenario } from '../demo-scenario.ts'
import { GasDetector, demoLeak, steadyBackground, type GasSegment } from '../gas-detector.ts'
import { MqttDevice } from '../mqtt-device.ts'
import { PatrolPhone } from '../patrol-phone.ts'

export interface ScenarioContext {
  mqttUrl: string
  onError: (err: Error) => void
  say: (line: string) => void
  /** For serial scenarios: the device end of the gateway's serial line, and its baud rate. */
  serialPath?: string
  baudRate?: number
  /** For camera HTTP scenarios: the gateway's camera event endpoint. */
  cameraUrl?: string
}

export interface RunningScenario {
  /** Resolves when a finite scenario has played out; never for an endless one. */
  done: Promise<void>
  stop(): Promise<void>
}

export interface Scenario {
  name: string
  /** What happens, and what the center should see. */
  expect: string
  run(ctx: ScenarioContext): Promise<RunningScenario>
}

/** The demo office's round, in order: old street east gate, chemical plant gate, square, bridge. */
export const ROUND_TAGS = ['04A1B2C3D4E5F6', '04A1B2C3D4E5F7', '04A1B2C3D4E5F8', '04A1B2C3D4E5F9']

const connect = (ctx: ScenarioContext, deviceId: string) => MqttDevice.connect({ url: ctx.mqttUrl, deviceId, password: demoDevicePassword(deviceId) })
const never = new Promise<void>(() => {})
const seconds = (s: number) => new Promise<void>((resolve) => setTimeout(resolve, s * 1000))

/** Hovers around the 25 %LEL low alarm: 22 ↔ 28 every few samples, for a minute. */
export const flappingAroundLow: GasSegment[] = [
  ...Array.from({ length: 10 }, (_, i) => [
    { from: i === 0 ? 4 : 22, to: 28, seconds: 1.5 },
    { from: 28, to: 22, seconds: 1.5 },
  ]).flat(),
  { from: 22, to: 4, seconds: 3 },
  { hold: 4, seconds: Infinity },
]

export const mqttScenarios: Scenario[] = [
  {
    name: 'demo',
    expect: 'the README demo: a gas alarm raised, escalated and cleared; an intrusion; an unknown tag; an SOS; an incident',
    async run(ctx) {
      const running = await runDemoScenario(ctx.mqttUrl, ctx.onError)
      return { done: never, stop: () => running.stop() }
    },
  },
  {
    name: 'normal-day',
    expect: 'readings in the normal range, the patrol round walked in order every 8 s, no alert',
    async run(ctx) {
      const [gas1, gas2, phone] = await Promise.all([connect(ctx, 'gas-001'), connect(ctx, 'gas-002'), connect(ctx, 'phone-001')])
      const plant = new GasDetector(gas1, steadyBackground, 2000)
      const kitchen = new GasDetector(gas2, steadyBackground, 2000)
      const patrol = new PatrolPhone(phone, 'staff-zhang-wei')
      plant.start(ctx.onError)
      kitchen.start(ctx.onError)
      let step = 0
      const walk = () => void patrol.scan(ROUND_TAGS[step++ % ROUND_TAGS.length]).catch(ctx.onError)
      walk()
      const round = setInterval(walk, 8000)
      return {
        done: never,
        async stop() {
          clearInterval(round)
          plant.stop()
          kitchen.stop()
          await Promise.allSettled([gas1, gas2, phone].map((d) => d.close()))
        },
      }
    },
  },
  {
    name: 'gas-leak',
    expect: 'gas-001 (reactor hall) rises through 25 and 50 %LEL: one alarm raised (major), updated to critical, cleared once it falls below 20',
    async run(ctx) {
      const gas = await connect(ctx, 'gas-001')
      const leak = new GasDetector(gas, demoLeak, 500)
      leak.start(ctx.onError)
      const done = seconds(12).then(() => ctx.say('the leak has played out; gas-001 is back at background'))
      return {
        done,
        async stop() {
          leak.stop()
          await gas.close()
        },
      }
    },
  },
  {
    name: 'flapping',
    expect: 'gas-001 hovers around the 25 %LEL low alarm for 30 s: hysteresis and debounce hold it to one alarm, not one per crossing',
    async run(ctx) {
      const gas = await connect(ctx, 'gas-001')
      const detector = new GasDetector(gas, flappingAroundLow, 500, 0.3)
      detector.start(ctx.onError)
      return {
        done: seconds(34),
        async stop() {
          detector.stop()
          await gas.close()
        },
      }
    },
  },
  {
    name: 'missed-patrol',
    expect:
      'staff-zhang-wei scans the old street east gate, skips the chemical plant gate and scans the square, then stops. ' +
      'Inside a scheduled tour (08:00 or 20:00 office time) that is an out-of-order scan, and when the tour window and its grace end ' +
      'the tour is reported incomplete with cp-02 and cp-04 missed; outside one the scans are only recorded',
    async run(ctx) {
      const phone = await connect(ctx, 'phone-001')
      const patrol = new PatrolPhone(phone, 'staff-zhang-wei')
      await patrol.scan(ROUND_TAGS[0])
      await seconds(2)
      await patrol.scan(ROUND_TAGS[2])
      ctx.say('scanned cp-01 and cp-03; cp-02 and cp-04 are left unwalked')
      return { done: Promise.resolve(), stop: () => phone.close() }
    },
  },
  {
    name: 'night-intrusion',
    expect: 'cam-001 at the north gate sees a person at 92% at night: one intrusion alert; the repeats inside the cooldown add none; a cat at 35% is recorded without an alert',
    async run(ctx) {
      const cam = await connect(ctx, 'cam-001')
      const camera = new AiCamera(cam)
      await camera.detect('intrusion', 0.92, 'north gate fence, 02:13')
      await seconds(1)
      await camera.detect('intrusion', 0.9, 'north gate fence, 02:13')
      await camera.detect('intrusion', 0.35, 'north gate fence (a cat)')
      return { done: Promise.resolve(), stop: () => cam.close() }
    },
  },
]
