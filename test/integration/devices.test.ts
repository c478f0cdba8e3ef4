/**
 * The simulators behind `npm run devices`, against a real gateway: scripted scenarios produce what
 * they promise the center will see, and the fleet load generator's devices each arrive as
 * themselves, every acknowledged message committed.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { parse } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Envelope } from '../../contracts/envelope.ts'
import { verifyPassword } from '../../common/secrets.ts'
import { demoDevicePassword } from '../../devices/demo-credentials.ts'
import { fleetDeviceId, officeYaml, runFleet } from '../../devices/load/fleet.ts'
import { findScenario } from '../../devices/scenarios/index.ts'
import type { Gateway } from '../../gateway/gateway.ts'
import type { CameraInput } from '../../gateway/inputs/camera/index.ts'
import { testOfficeConfig } from '../helpers/office.ts'
import { describeWith } from '../helpers/binaries.ts'
import { SOCAT, startPtyPair, type PtyPair } from '../helpers/pty.ts'
import { startGateway } from '../helpers/stack.ts'
import { waitFor } from '../helpers/wait.ts'

const run = promisify(execFile)
const FLEET = 12

describe('device simulators', () => {
  let gateway: Gateway
  let url: string
  const committed = (): Envelope[] => gateway.outbox.peek(100_000).map((r) => JSON.parse(r.body) as Envelope)
  const quiet = { mqttUrl: '', onError: (err: Error) => expect.fail(err.message), say: () => {} }

  beforeAll(async () => {
    const fleet = parse(await officeYaml(FLEET, 'fleet-')) as { devices: object[] }
    const demo = testOfficeConfig()
    gateway = await startGateway({
      overrides: {
        devices: [...demo.devices, ...fleet.devices],
        // Every fleet connection comes from 127.0.0.1.
        broker: { limits: { connectsPerSecondPerAddress: 1000 } },
        inputs: { camera: { port: 0 } },
      },
    })
    url = `mqtt://127.0.0.1:${gateway.mqtt.port!}`
  }, 60_000)
  afterAll(async () => {
    await gateway?.stop()
  })

  it('night-intrusion: three camera events, one intrusion alert (a repeat is in the cooldown, a cat is below the confidence floor)', async () => {
    const running = await findScenario('night-intrusion')!.run({ ...quiet, mqttUrl: url })
    await running.done
    await running.stop()
    const camera = committed().filter((e) => e.device === 'cam-001' && e.kind === 'camera')
    expect(camera.map((e) => e.kind === 'camera' && e.payload.confidence)).toEqual([0.92, 0.9, 0.35])
    const alerts = committed().filter((e) => e.kind === 'alert' && e.device === 'cam-001')
    expect(alerts.map((e) => e.kind === 'alert' && [e.payload.type, e.payload.state])).toEqual([['camera.intrusion', 'raised']])
  })

  it('isapi-intrusion: every push answered 200, one intrusion alert, the snapshot referenced from the event', async () => {
    const camera = gateway.input('camera') as CameraInput
    const running = await findScenario('isapi-intrusion')!.run({ ...quiet, mqttUrl: url, cameraUrl: `http://127.0.0.1:${camera.port}/ISAPI/Event/notification/alert` })
    await running.done
    const events = committed().filter((e) => e.device === 'cam-002' && e.kind === 'camera')
    // Three posts while the person stays; the heartbeat and the event's end are not stored.
    expect(events).toHaveLength(3)
    expect(events.filter((e) => e.kind === 'camera' && e.payload.snapshot !== undefined)).toHaveLength(1)
    const alerts = committed().filter((e) => e.kind === 'alert' && e.device === 'cam-002')
    expect(alerts.map((e) => e.kind === 'alert' && [e.payload.type, e.payload.state])).toEqual([['camera.intrusion', 'raised']])
  })

  it('missed-patrol: the round is scanned with checkpoints skipped, each scan resolved to its checkpoint', async () => {
    const running = await findScenario('missed-patrol')!.run({ ...quiet, mqttUrl: url })
    await running.done
    await running.stop()
    const scans = committed().filter((e) => e.kind === 'scan' && e.device === 'phone-001')
    expect(scans.map((e) => e.kind === 'scan' && e.payload.checkpoint)).toEqual(['cp-01', 'cp-03'])
  })

  it('a fleet load: each device publishes as itself at its rate, and every acknowledged reading is committed', async () => {
    const result = await runFleet({ url, devices: FLEET, rate: 5, seconds: 2, qos: 1, kinds: ['reading'], prefix: 'fleet-', connectRate: 500 })
    expect(result).toMatchObject({ connected: FLEET, connect_failures: 0 })
    expect(result.sent).toBeGreaterThanOrEqual(FLEET * 5)
    expect(result.acked).toBe(result.sent)
    const readings = await waitFor(() => {
      const rows = committed().filter((e) => e.kind === 'reading' && e.device.startsWith('fleet-'))
      return rows.length >= result.acked ? rows : undefined
    })
    expect(readings).toHaveLength(result.acked)
    expect(new Set(readings.map((e) => e.device))).toEqual(new Set(Array.from({ length: FLEET }, (_, i) => fleetDeviceId('fleet-', i + 1, FLEET))))
  }, 30_000)

  it('`npm run devices -- --office-yaml N` prints devices whose hashes match the demo password scheme', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'devices/main.ts', '--office-yaml', '3'], { timeout: 30_000 })
    const { devices } = parse(stdout) as { devices: { id: string; secret: string }[] }
    expect(devices.map((d) => d.id)).toEqual(['load-1', 'load-2', 'load-3'])
    expect(await verifyPassword(demoDevicePassword('load-2'), devices[1].secret)).toBe(true)
    expect(await verifyPassword(demoDevicePassword('load-1'), devices[1].secret)).toBe(false)
  })

  it('an unknown scenario is refused with the list of scenarios, exit code 2', async () => {
    const failure = await run(process.execPath, ['--import', 'tsx', 'devices/main.ts', '--scenario', 'no-such'], { timeout: 30_000 }).catch((err: unknown) => err)
    expect(failure).toMatchObject({ code: 2 })
    expect((failure as { stderr: string }).stderr).toMatch(/no scenario "no-such"[\s\S]*gas-leak/)
  })
})

describeWith([SOCAT])('serial scenarios', () => {
  let gateway: Gateway
  let pair: PtyPair
  const committed = (): Envelope[] => gateway.outbox.peek(100_000).map((r) => JSON.parse(r.body) as Envelope)

  beforeAll(async () => {
    pair = await startPtyPair()
    gateway = await startGateway({ overrides: { inputs: { serial: [{ id: 'dock', path: pair.master, devices: ['wand-01'] }] } } })
  })
  afterAll(async () => {
    await gateway?.stop()
    await pair?.kill()
  })

  it('wand-upload: 500 stored scans, each committed once with the time the wand scanned it', async () => {
    const lines: string[] = []
    const running = await findScenario('wand-upload')!.run({ mqttUrl: '', serialPath: pair.slaves, onError: (err) => expect.fail(err.message), say: (l) => lines.push(l) })
    await running.done
    await running.stop()
    expect(lines.at(-1)).toMatch(/^500 acknowledged .* 0 left on the wand/)
    const scans = committed().filter((e) => e.kind === 'scan' && e.device === 'wand-01')
    expect(scans).toHaveLength(500)
    // Two minutes apart, ending an hour before the upload: the wand's times, not the gateway's.
    const times = scans.map((e) => e.ts).sort((a, b) => a - b)
    expect(times[1] - times[0]).toBe(120_000)
    expect(Date.now() - times[499]).toBeGreaterThan(3_500_000)
    expect(scans.every((e) => e.kind === 'scan' && e.payload.method === 'wand' && e.payload.staff === 'staff-zhang-wei')).toBe(true)
  }, 60_000)
})
