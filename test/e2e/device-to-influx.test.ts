/**
 * The whole path with the production store: a device publishes over MQTT (QoS 1) to the
 * gateway's broker, the gateway commits, forwards, and the cloud API writes to a real InfluxDB,
 * from which GET /v1/series and GET /v1/alerts answer.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { MqttClient } from 'mqtt'
import { InfluxStore } from '../../cloud-api/store/influx-store.ts'
import type { Gateway } from '../../gateway/gateway.ts'
import { runDemoScenario, type RunningScenario } from '../../devices/demo-scenario.ts'
import { describeWith, INFLUXD } from '../helpers/binaries.ts'
import { startInfluxd, type RunningInfluxd } from '../helpers/influxd.ts'
import { connectDevice, readJson, startCloud, startGateway, type RunningCloud } from '../helpers/stack.ts'
import { waitFor } from '../helpers/wait.ts'

interface Alerts {
  alerts: { id: string; type: string; severity: string; state: string; device: string; clearedAt?: string; detail: { peak?: number } }[]
}

describeWith([INFLUXD])('device → gateway → cloud → InfluxDB', () => {
  let influxd: RunningInfluxd
  let cloud: RunningCloud
  let gateway: Gateway
  let device: MqttClient

  beforeAll(async () => {
    influxd = await startInfluxd()
    cloud = await startCloud({ store: new InfluxStore({ url: influxd.url, database: 'gridwatch_e2e' }) })
    gateway = await startGateway({ uplinkUrl: cloud.url })
    device = await connectDevice(gateway.mqtt.port!, 'gas-001')
  })
  afterAll(async () => {
    await device?.endAsync(true)
    await gateway?.stop()
    await cloud?.close()
    await influxd?.stop()
  })

  it('a QoS 1 reading published over MQTT is read back through GET /v1/series from InfluxDB', async () => {
    const ts = Date.now() - 1234
    await device.publishAsync('dev/gas-001/reading', JSON.stringify({ ts, quantity: 'gas', value: 12.75, unit: '%LEL' }), { qos: 1 })
    const series = await waitFor(
      async () => {
        const s = await readJson<{ points: { time: string; value: number; quantity: string; unit: string; id: string }[] }>(
          `${cloud.url}/v1/series?device=gas-001&from=${new Date(ts - 1000).toISOString()}&to=${new Date(ts + 1000).toISOString()}`,
        )
        return s.points.length > 0 ? s : undefined
      },
      { what: 'the reading in InfluxDB' },
    )
    expect(series.points).toEqual([
      { time: new Date(ts).toISOString(), value: 12.75, quantity: 'gas', unit: '%LEL', id: expect.stringMatching(/^gw-tangquan-01:\d+$/) },
    ])
  })

  it('a gas leak becomes one alert in InfluxDB: raised, escalated, cleared, with its peak', async () => {
    for (const value of [30, 55, 62, 10]) {
      await device.publishAsync('dev/gas-001/reading', JSON.stringify({ quantity: 'gas', value }), { qos: 1 })
    }
    const alert = await waitFor(
      async () => {
        const list = await readJson<Alerts>(`${cloud.url}/v1/alerts?office=tangquan&device=gas-001&cleared=true`)
        return list.alerts[0]
      },
      { what: 'a cleared gas alert' },
    )
    // Cleared by the gateway, but still raised: a person resolves it.
    expect(alert).toMatchObject({ type: 'sensor.threshold', severity: 'critical', state: 'raised', detail: { peak: 62 } })
    expect(alert.clearedAt).toEqual(expect.any(String))
  })

  it('the demo scenario: alerts from the gas detector, the patrol phone and the camera all reach the cloud', async () => {
    const errors: Error[] = []
    const scenario: RunningScenario = await runDemoScenario(`mqtt://127.0.0.1:${gateway.mqtt.port!}`, (err) => errors.push(err))
    try {
      const types = await waitFor(
        async () => {
          const list = await readJson<Alerts>(`${cloud.url}/v1/alerts?office=tangquan`)
          const seen = new Set(list.alerts.map((a) => a.type))
          const wanted = ['camera.intrusion', 'patrol.unknown_tag', 'patrol.sos', 'sensor.threshold']
          return wanted.every((t) => seen.has(t)) && list.alerts.some((a) => a.device === 'gas-001' && a.clearedAt === undefined) ? seen : undefined
        },
        { timeoutMs: 15_000, what: 'alerts from all three device kinds' },
      )
      expect([...types].sort()).toEqual(['camera.intrusion', 'patrol.sos', 'patrol.unknown_tag', 'sensor.threshold'])
      expect(errors).toEqual([])
    } finally {
      await scenario.stop()
    }
  })
})
