/**
 * MQTT load generator: N clients publishing readings, QoS 0 or 1, each with a bounded in-flight
 * window (as a real device has), for a duration or a message count, optionally at a set total
 * rate. Runs as its own process so it does not share an event loop with the broker under test.
 * Prints one JSON line: {"acked", "seconds", "msgs_per_s", ...}.
 *
 *   node dist/devices/load/mqtt-load.js --url mqtt://127.0.0.1:1883 --clients 8 --seconds 10 \
 *       --qos 1 [--rate 5000] [--window 100] [--device gas-002 --password ...] [--messages N]
 *
 * With QoS 1 a message counts when its PUBACK arrives.
 */
import mqtt, { type MqttClient } from 'mqtt'
import { argValue } from '../../common/process.ts'

const argv = process.argv.slice(2)
const url = argValue(argv, '--url') ?? 'mqtt://127.0.0.1:1883'
const clients = Number(argValue(argv, '--clients') ?? 4)
const seconds = Number(argValue(argv, '--seconds') ?? 0)
const messages = Number(argValue(argv, '--messages') ?? (seconds > 0 ? Infinity : 50_000))
const perClientLimit = messages / clients
const qos = Number(argValue(argv, '--qos') ?? 1) as 0 | 1
const rate = Number(argValue(argv, '--rate') ?? 0)
const window = Number(argValue(argv, '--window') ?? 100)
const device = argValue(argv, '--device') ?? 'gas-002'
const password = argValue(argv, '--password')
const topic = argValue(argv, '--topic') ?? `dev/${device}/reading`

interface ClientResult {
  sent: number
  acked: number
}

function run(client: MqttClient, deadline: number): Promise<ClientResult> {
  let sent = 0
  let acked = 0
  const perClientRate = rate > 0 ? rate / clients : 0
  const started = performance.now()
  return new Promise((resolve) => {
    let finished = false
    let ticker: NodeJS.Timeout | undefined
    const done = () => {
      if (finished) return
      finished = true
      clearInterval(ticker)
      resolve({ sent, acked })
    }
    const publishOne = () => {
      const payload = JSON.stringify({ ts: Date.now(), quantity: 'gas', value: (sent % 200) / 10 })
      sent++
      if (qos === 0) {
        client.publish(topic, payload, { qos: 0 })
        acked++
      } else {
        client.publish(topic, payload, { qos: 1 }, (err) => {
          if (!err) acked++
          if (performance.now() >= deadline && acked === sent) done()
          else if (perClientRate === 0) pump()
        })
      }
    }
    // Flat out: keep the window full, refilling on each PUBACK.
    const pump = () => {
      if (performance.now() >= deadline || sent >= perClientLimit) {
        if (qos === 0 || acked === sent) done()
        return
      }
      if (qos !== 0) {
        while (sent < perClientLimit && sent - acked < window) publishOne()
        return
      }
      // QoS 0 is never in flight, so the window is a burst size: `window` messages per turn.
      for (let i = 0; i < window && sent < perClientLimit; i++) publishOne()
      // QoS 0 has no acknowledgement to pace it; the socket does. A broker that applies
      // back-pressure stops reading, and without this the generator would buffer without bound.
      const stream = client.stream as { writableLength?: number; once(e: 'drain', f: () => void): void }
      if ((stream.writableLength ?? 0) > 1 << 20) stream.once('drain', pump)
      else setImmediate(pump)
    }
    if (perClientRate === 0) {
      pump()
      return
    }
    // At a set rate: every 10 ms, publish what the schedule says is due (window permitting).
    // One timer per client, not one per message, so the generator itself stays cheap.
    ticker = setInterval(() => {
      const now = performance.now()
      if (now >= deadline || sent >= perClientLimit) {
        clearInterval(ticker)
        if (qos === 0 || acked === sent) done()
        return
      }
      const due = Math.min(perClientLimit, Math.floor(((now - started) / 1000) * perClientRate))
      while (sent < due && sent - acked < window) publishOne()
    }, 10)
  })
}

const connected = await Promise.all(
  Array.from({ length: clients }, (_, i) =>
    mqtt.connectAsync(url, {
      clientId: `load-${process.pid}-${i}`,
      ...(password ? { username: device, password } : {}),
      reconnectPeriod: 0,
      protocolVersion: 4,
    }),
  ),
)
const t0 = performance.now()
const cpu0 = process.cpuUsage()
const deadline = seconds > 0 ? t0 + seconds * 1000 : Infinity
const results = await Promise.all(connected.map((c) => run(c, deadline)))
const elapsed = (performance.now() - t0) / 1000
const cpu = process.cpuUsage(cpu0)
await Promise.all(connected.map((c) => c.endAsync(true)))
const acked = results.reduce((a, r) => a + r.acked, 0)
const sent = results.reduce((a, r) => a + r.sent, 0)
process.stdout.write(JSON.stringify({ clients, qos, window, sent, acked, seconds: elapsed, msgs_per_s: Math.round(acked / elapsed), cpu_percent: Math.round((cpu.user + cpu.system) / 1e4 / elapsed) }) + '\n')
