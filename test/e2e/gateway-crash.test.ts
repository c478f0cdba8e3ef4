/**
 * The durability promise at process level: the gateway runs as its own process (gateway/main.ts),
 * is killed with SIGKILL in the middle of a QoS 1 stream, and restarted. Every message the
 * device got a PUBACK for reaches the cloud, once.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../../common/ports.ts'
import { demoDevicePassword } from '../../devices/demo-credentials.ts'
import { readJson, startCloud, TEST_GATEWAY_TOKEN, type RunningCloud } from '../helpers/stack.ts'
import { waitFor } from '../helpers/wait.ts'
import { testTempDir } from '../helpers/temp.ts'

const root = join(import.meta.dirname, '..', '..')

describe('gateway killed with SIGKILL mid-stream', () => {
  let cloud: RunningCloud
  const dataDir = testTempDir('gridwatch-crash-')
  let mqttPort: number
  let httpPort: number
  const children: ChildProcess[] = []

  async function startGatewayProcess(): Promise<ChildProcess> {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'gateway/main.ts')], {
      cwd: root,
      env: {
        ...process.env,
        LOG_LEVEL: 'warn',
        GRIDWATCH_UPLINK_URL: cloud.url,
        GRIDWATCH_UPLINK_TOKEN: TEST_GATEWAY_TOKEN,
        GRIDWATCH_MQTT_PORT: String(mqttPort),
        GRIDWATCH_GATEWAY_HTTP_PORT: String(httpPort),
        GRIDWATCH_DATA_DIR: dataDir,
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    })
    children.push(child)
    await waitFor(async () => ((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).ok ? true : undefined), {
      timeoutMs: 30_000,
      what: 'gateway process ready',
    })
    return child
  }

  beforeAll(async () => {
    cloud = await startCloud()
    mqttPort = await freePort()
    httpPort = await freePort()
  })
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
    await cloud.close()
  })

  it('loses no acknowledged message', async () => {
    const first = await startGatewayProcess()
    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
      clientId: 'gas-002',
      username: 'gas-002',
      password: demoDevicePassword('gas-002'),
      reconnectPeriod: 0,
    })
    const acked = new Set<number>()
    const base = Date.now()
    const total = 3000
    let killed = false
    const exited = new Promise<void>((resolve) => first.once('exit', () => resolve()))
    await new Promise<void>((resolve) => {
      device.once('close', () => resolve())
      for (let i = 0; i < total; i++) {
        device.publish('dev/gas-002/reading', JSON.stringify({ ts: base + i, quantity: 'gas', value: i }), { qos: 1 }, (err) => {
          if (err) return
          acked.add(i)
          if (!killed && acked.size >= 1000) {
            killed = true
            first.kill('SIGKILL')
          }
        })
      }
    })
    await exited
    device.end(true)
    expect(killed).toBe(true)
    expect(acked.size).toBeGreaterThanOrEqual(1000)
    expect(acked.size).toBeLessThan(total)

    await startGatewayProcess()
    const stored = await waitFor(
      async () => {
        const s = await readJson<{ points: { value: number; id: string }[] }>(
          `${cloud.url}/v1/series?device=gas-002&from=${base}&to=${base + total}&limit=100000`,
        )
        const values = new Set(s.points.map((p) => p.value))
        return [...acked].every((v) => values.has(v)) ? s : undefined
      },
      { timeoutMs: 30_000, what: 'every acknowledged reading in the cloud' },
    )
    const values = stored.points.map((p) => p.value)
    expect(new Set(values).size).toBe(values.length)
    expect([...acked].filter((v) => !values.includes(v))).toEqual([])
  })
})
