/**
 * The OPC UA input against real node-opcua plant servers (devices/opcua): values become readings
 * in the outbox, an alarm-level gas value raises its alarm, Bad and Uncertain status codes become
 * sensor faults, a server restart is survived with exactly one subscription, a session the server
 * drops without cutting TCP is noticed, SignAndEncrypt works with certificates on both sides, and
 * stop releases the certificate manager however many connections were refused.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs'
import { createServer, connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CertificateManager } from 'node-opcua'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../../common/ports.ts'
import { startPlantServer, type PlantServer } from '../../devices/opcua/plant-server.ts'
import { Gateway } from '../../gateway/gateway.ts'
import { capturingLogger } from '../helpers/stack.ts'
import { testOfficeConfig } from '../helpers/office.ts'
import { waitFor } from '../helpers/wait.ts'
import { removeTestDir } from '../helpers/temp.ts'

interface Row {
  seq: number
  device: string
  kind: string
  ts: number
  payload: { quantity?: string; value?: number; unit?: string; state?: string; reason?: string; type?: string }
}


/** The demo office plus one OPC UA gas detector read from `plant`; `server` overrides the server entry. */
function oneGasItemOffice(plant: PlantServer, server: Record<string, unknown>) {
  const base = testOfficeConfig()
  return testOfficeConfig({
    devices: [...base.devices, { id: 'plant-gas-01', type: 'gas-detector', via: 'opcua' }],
    inputs: {
      opcua: [
        {
          endpointUrl: plant.endpointUrl,
          reconnect: { initialDelayMs: 100, maxDelayMs: 300 },
          items: [{ nodeId: plant.nodeId('gas-01'), device: 'plant-gas-01', quantity: 'gas' }],
          ...server,
        },
      ],
    },
  })
}

describe('opcua input', () => {
  let plant: PlantServer
  let securePlant: PlantServer
  let gateway: Gateway
  const { logger, lines } = capturingLogger('gateway')
  const root = mkdtempSync(join(tmpdir(), 'gridwatch-opcua-'))

  const rows = (device: string, kind?: string): Row[] =>
    gateway.outbox
      .peek(100_000)
      .map((r) => ({ seq: r.seq, ...(JSON.parse(r.body) as Omit<Row, 'seq'>) }))
      .filter((r) => r.device === device && (kind === undefined || r.kind === kind))
      .sort((a, b) => a.seq - b.seq)
  const rowWhere = (device: string, kind: string, match: (r: Row) => boolean, what: string) =>
    waitFor(() => rows(device, kind).find(match), { timeoutMs: 10_000, what })
  const metric = async (name: string, source: string) => {
    const m = new RegExp(`${name}\\{input="opcua",source="${source}"\\} (\\d+)`).exec(await gateway.metrics.registry.metrics())
    return m ? Number(m[1]) : 0
  }

  beforeAll(async () => {
    ;[plant, securePlant] = await Promise.all([
      freePort().then((port) => startPlantServer({ port, pkiDir: join(root, 'plant-pki'), acceptAnyClientCertificate: true })),
      freePort().then((port) =>
        startPlantServer({ port, pkiDir: join(root, 'secure-pki'), acceptAnyClientCertificate: true, variables: [{ name: 'gas-01', quantity: 'gas' }] }),
      ),
    ])
    const base = testOfficeConfig()
    const opcua = (id: string, type: string) => ({ id, type, via: 'opcua', grid: 'g-laojie-1' })
    const config = testOfficeConfig({
      devices: [
        ...base.devices,
        opcua('plant-gas-01', 'gas-detector'),
        opcua('plant-temp-01', 'temperature-sensor'),
        opcua('plant-pressure-01', 'pressure-sensor'),
        opcua('secure-gas-01', 'gas-detector'),
      ],
      reduction: { deadband: { gas: 0 }, aggregates: false },
      inputs: {
        opcua: [
          {
            name: 'plant',
            endpointUrl: plant.endpointUrl,
            publishingIntervalMs: 100,
            samplingIntervalMs: 50,
            reconnect: { initialDelayMs: 100, maxDelayMs: 500 },
            items: [
              { nodeId: plant.nodeId('gas-01'), device: 'plant-gas-01', quantity: 'gas' },
              { nodeId: plant.nodeId('temperature-01'), device: 'plant-temp-01', quantity: 'temperature', unit: '°C', deadband: { type: 'absolute', value: 0.5 } },
              // kPa on the server, MPa in GridWatch; a percent deadband needs the server's EURange.
              { nodeId: plant.nodeId('pressure-01'), device: 'plant-pressure-01', quantity: 'pressure', unit: 'MPa', scale: 0.001, deadband: { type: 'percent', value: 1 } },
              // Not on the server: refused alone, the other items work.
              { nodeId: 'ns=2;s=Plant.no-such-node', device: 'plant-gas-01', quantity: 'co' },
            ],
          },
          {
            name: 'plant-secure',
            endpointUrl: securePlant.endpointUrl,
            security: { mode: 'SignAndEncrypt', policy: 'Basic256Sha256' },
            publishingIntervalMs: 100,
            samplingIntervalMs: 50,
            items: [{ nodeId: securePlant.nodeId('gas-01'), device: 'secure-gas-01', quantity: 'gas' }],
          },
        ],
      },
    })
    // The operator's step: trust the plant server's certificate (it would sit in rejected/ otherwise).
    const trusted = join(config.gateway.dataDir, 'pki', 'opcua', 'trusted', 'certs')
    mkdirSync(trusted, { recursive: true })
    copyFileSync(securePlant.certificateFile, join(trusted, 'secure-plant.pem'))
    gateway = await Gateway.start(config, { logger, processMetrics: false })
    await waitFor(async () => ((await metric('gateway_input_connected', 'plant')) === 1 && (await metric('gateway_input_connected', 'plant-secure')) === 1) || undefined, {
      timeoutMs: 20_000,
      what: 'both OPC UA sessions',
    })
  })
  afterAll(async () => {
    await gateway?.stop()
    await Promise.all([plant?.stop(), securePlant?.stop()])
    removeTestDir(root)
  })

  it('turns values into readings with the server\'s source timestamp, unit and scale', async () => {
    const sourceTime = new Date(Date.now() - 3000)
    plant.setValue('gas-01', 12.5, sourceTime)
    plant.setValue('pressure-01', 250)
    const gas = await rowWhere('plant-gas-01', 'reading', (r) => r.payload.value === 12.5, 'the gas reading')
    expect(gas.payload).toEqual({ quantity: 'gas', value: 12.5, unit: '%LEL' })
    expect(gas.ts).toBe(sourceTime.getTime())
    const pressure = await rowWhere('plant-pressure-01', 'reading', (r) => r.payload.value === 0.25, 'the scaled pressure reading')
    expect(pressure.payload).toEqual({ quantity: 'pressure', value: 0.25, unit: 'MPa' })
    expect(await metric('gateway_input_frames_total', 'plant')).toBeGreaterThanOrEqual(2)
  })

  it('refuses a node the server does not have, alone, and says so', async () => {
    const m = /gateway_input_rejected_total\{input="opcua",source="plant",reason="node_invalid"\} (\d+)/.exec(await gateway.metrics.registry.metrics())
    expect(Number(m?.[1])).toBe(1)
    expect(lines.some((l) => l.includes('"code":"GW_OPCUA_NODE_INVALID"') && l.includes('Plant.no-such-node') && l.includes('BadNodeIdUnknown'))).toBe(true)
    expect(plant.monitoredItemCount()).toBe(3)
  })

  it('asks the server for the deadband: a change inside it sends nothing', async () => {
    plant.setValue('temperature-01', 30)
    await rowWhere('plant-temp-01', 'reading', (r) => r.payload.value === 30, 'temperature 30')
    // Inside the 0.5 °C absolute deadband: filtered by the server. Then outside it: reported.
    plant.setValue('temperature-01', 30.2)
    plant.setValue('temperature-01', 31)
    await rowWhere('plant-temp-01', 'reading', (r) => r.payload.value === 31, 'temperature 31')
    expect(rows('plant-temp-01', 'reading').map((r) => r.payload.value)).not.toContain(30.2)
  })

  it('a gas value over 25 %LEL raises the sensor alarm', async () => {
    plant.setValue('gas-01', 31)
    const alert = await rowWhere('plant-gas-01', 'alert', (r) => r.payload.type === 'sensor.threshold', 'the gas alarm')
    expect(alert.payload).toMatchObject({ type: 'sensor.threshold', state: 'raised', value: 31 })
  })

  it('a Bad or Uncertain status is a sensor fault; Good again is online', async () => {
    plant.setStatus('temperature-01', 'BadSensorFailure')
    const fault = await rowWhere('plant-temp-01', 'status', (r) => r.payload.state === 'fault', 'the fault status')
    expect(fault.payload).toEqual({ state: 'fault', reason: 'BadSensorFailure' })
    await rowWhere('plant-temp-01', 'alert', (r) => r.payload.type === 'sensor.fault' && r.payload.state === 'raised', 'the sensor.fault alarm')
    expect(lines.some((l) => l.includes('"code":"GW_OPCUA_BAD_STATUS"') && l.includes('plant-temp-01'))).toBe(true)

    plant.setValue('temperature-01', 22)
    const online = await rowWhere('plant-temp-01', 'status', (r) => r.seq > fault.seq && r.payload.state === 'online', 'the online status')
    expect(online.payload).toEqual({ state: 'online' })
    await rowWhere('plant-temp-01', 'alert', (r) => r.payload.type === 'sensor.fault' && r.payload.state === 'cleared', 'the cleared sensor.fault')
    // No reading carries the value that came with the Bad status.
    expect(rows('plant-temp-01', 'reading').filter((r) => r.seq > fault.seq && r.seq < online.seq)).toEqual([])

    plant.setStatus('pressure-01', 'UncertainLastUsableValue')
    const uncertain = await rowWhere('plant-pressure-01', 'status', (r) => r.payload.state === 'fault', 'the uncertain fault')
    expect(uncertain.payload.reason).toBe('UncertainLastUsableValue')
  })

  it('after a server restart the subscription is re-created once, never duplicated', async () => {
    const reconnects = await metric('gateway_input_reconnects_total', 'plant')
    expect(plant.subscriptionCount).toBe(1)
    await plant.stop()
    await waitFor(async () => ((await metric('gateway_input_connected', 'plant')) === 0 ? true : undefined), { what: 'the link to go down' })
    const health = (await (await fetch(`http://127.0.0.1:${gateway.httpPort}/healthz`)).json()) as { inputs: Record<string, { ok: boolean; detail?: string }> }
    expect(health.inputs.opcua).toEqual({ ok: false, detail: 'no session with plant; 1 configured node(s) refused by their server' })

    await plant.start()
    await waitFor(async () => ((await metric('gateway_input_connected', 'plant')) === 1 ? true : undefined), { timeoutMs: 20_000, what: 'the repaired session' })
    expect(await metric('gateway_input_reconnects_total', 'plant')).toBe(reconnects + 1)
    expect(plant.subscriptionCount).toBe(1)
    expect(plant.monitoredItemCount()).toBe(3)

    // One change, one reading: a second subscription would deliver it twice. The next value is a
    // marker: each subscription delivers in order, so once it arrived any duplicate would have too.
    plant.setValue('gas-01', 7.77)
    await rowWhere('plant-gas-01', 'reading', (r) => r.payload.value === 7.77, 'the value after the restart')
    plant.setValue('gas-01', 7.78)
    await rowWhere('plant-gas-01', 'reading', (r) => r.payload.value === 7.78, 'the marker value')
    expect(rows('plant-gas-01', 'reading').filter((r) => r.payload.value === 7.77)).toHaveLength(1)
    expect(plant.subscriptionCount).toBe(1)
  })

  it('reads a SignAndEncrypt (Basic256Sha256) endpoint with certificates on both sides', async () => {
    expect(securePlant.sessionSecurityModes()).toEqual(['SignAndEncrypt'])
    securePlant.setValue('gas-01', 4.25)
    const reading = await rowWhere('secure-gas-01', 'reading', (r) => r.payload.value === 4.25, 'the reading over the secure channel')
    expect(reading.payload).toEqual({ quantity: 'gas', value: 4.25, unit: '%LEL' })
    const health = (await (await fetch(`http://127.0.0.1:${gateway.httpPort}/healthz`)).json()) as { inputs: Record<string, { ok: boolean }> }
    expect(health.inputs.opcua).toEqual({ ok: true, detail: '1 configured node(s) refused by their server' })
  })
})

describe('opcua input with an untrusted server certificate', () => {
  let plant: PlantServer
  let gateway: Gateway
  let dataDir: string
  const { logger, lines } = capturingLogger('gateway')
  const root = mkdtempSync(join(tmpdir(), 'gridwatch-opcua-untrusted-'))

  beforeAll(async () => {
    plant = await startPlantServer({ port: await freePort(), pkiDir: join(root, 'plant-pki'), acceptAnyClientCertificate: true })
    const config = oneGasItemOffice(plant, { name: 'stranger', security: { mode: 'SignAndEncrypt' } })
    dataDir = config.gateway.dataDir
    gateway = await Gateway.start(config, { logger, processMetrics: false })
  })
  afterAll(async () => {
    await gateway?.stop()
    await plant?.stop()
    removeTestDir(root)
  })

  it('refuses the session, keeps retrying, and says so in health', async () => {
    await waitFor(() => (lines.filter((l) => l.includes('"code":"GW_OPCUA_CONNECT_FAILED"')).length >= 2 ? true : undefined), {
      what: 'two refused attempts',
    })
    expect(plant.sessionCount).toBe(0)
    const health = (await (await fetch(`http://127.0.0.1:${gateway.httpPort}/healthz`)).json()) as { inputs: Record<string, { ok: boolean; detail?: string }> }
    expect(health.inputs.opcua).toEqual({ ok: false, detail: 'no session with stranger' })
    expect(gateway.outbox.peek(10_000).filter((r) => r.body.includes('"device":"plant-gas-01"'))).toEqual([])
    // Where the operator finds it, to move to trusted/certs once they checked its thumbprint.
    expect(readdirSync(join(dataDir, 'pki', 'opcua', 'rejected')).filter((f) => f.endsWith('.pem'))).toHaveLength(1)
  })

  it('releases its certificate manager at stop, though every refused client kept a reference', async () => {
    await gateway.stop()
    // checkAllDisposed() names the root folder of every manager still initialized; the plant
    // server's own is still running, the gateway's must not be listed.
    let undisposed = ''
    try {
      CertificateManager.checkAllDisposed()
    } catch (err) {
      undisposed = (err as Error).message
    }
    expect(undisposed).not.toContain(join(dataDir, 'pki', 'opcua'))
  })
})

/** A TCP relay whose connections can be cut, as a network loss the server does not notice. */
async function relay(targetPort: number): Promise<{ port: number; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>()
  const server = createServer((downstream) => {
    const upstream = connect(targetPort, '127.0.0.1')
    for (const s of [downstream, upstream]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {
        downstream.destroy()
        upstream.destroy()
      })
    }
    downstream.pipe(upstream).pipe(downstream)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    cut: () => {
      for (const s of sockets) s.destroy()
    },
    close: () => {
      for (const s of sockets) s.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

describe('opcua input through a network loss', () => {
  let plant: PlantServer
  let gateway: Gateway
  let link: Awaited<ReturnType<typeof relay>>
  const root = mkdtempSync(join(tmpdir(), 'gridwatch-opcua-net-'))
  const metric = async (name: string) => {
    const m = new RegExp(`${name}\\{input="opcua",source="plant"\\} (\\d+)`).exec(await gateway.metrics.registry.metrics())
    return m ? Number(m[1]) : 0
  }

  beforeAll(async () => {
    plant = await startPlantServer({ port: await freePort(), pkiDir: join(root, 'plant-pki'), acceptAnyClientCertificate: true })
    link = await relay(plant.port)
    const config = oneGasItemOffice(plant, { name: 'plant', endpointUrl: `opc.tcp://127.0.0.1:${link.port}/UA/Plant`, publishingIntervalMs: 100, samplingIntervalMs: 50 })
    gateway = await Gateway.start(config, { logger: capturingLogger('gateway').logger, processMetrics: false })
    await waitFor(async () => ((await metric('gateway_input_connected')) === 1 ? true : undefined), { timeoutMs: 20_000, what: 'the session' })
  })
  afterAll(async () => {
    await gateway?.stop()
    await link?.close()
    await plant?.stop()
    removeTestDir(root)
  })

  it('reactivates the same session and keeps its one subscription', async () => {
    expect([plant.sessionCount, plant.subscriptionCount]).toEqual([1, 1])
    const reconnects = await metric('gateway_input_reconnects_total')
    link.cut()
    await waitFor(async () => ((await metric('gateway_input_reconnects_total')) === reconnects + 1 ? true : undefined), {
      timeoutMs: 20_000,
      what: 'the repaired session',
    })
    expect(await metric('gateway_input_connected')).toBe(1)
    // ActivateSession on the old session (Part 4, 6.7): a new session would leave the old one open.
    expect([plant.sessionCount, plant.subscriptionCount]).toEqual([1, 1])
    plant.setValue('gas-01', 5.55)
    await waitFor(() => gateway.outbox.peek(10_000).find((r) => r.body.includes('"value":5.55')), { what: 'the value after the cut' })
    plant.setValue('gas-01', 5.56)
    await waitFor(() => gateway.outbox.peek(10_000).find((r) => r.body.includes('"value":5.56')), { what: 'the marker value' })
    expect(gateway.outbox.peek(10_000).filter((r) => r.body.includes('"value":5.55'))).toHaveLength(1)
  })
})

describe('opcua input when the server drops the session', () => {
  let plant: PlantServer
  let gateway: Gateway
  const { logger, lines } = capturingLogger('gateway')
  const root = mkdtempSync(join(tmpdir(), 'gridwatch-opcua-drop-'))
  const metric = async (name: string) => {
    const m = new RegExp(`${name}\\{input="opcua",source="plant"\\} (\\d+)`).exec(await gateway.metrics.registry.metrics())
    return m ? Number(m[1]) : 0
  }

  // Its own server and gateway: run after the network-cut test, this check passed even without
  // the watchdog (the client noticed the drop some other way there), hiding the case it guards.
  beforeAll(async () => {
    plant = await startPlantServer({ port: await freePort(), pkiDir: join(root, 'plant-pki'), acceptAnyClientCertificate: true })
    const config = oneGasItemOffice(plant, { name: 'plant', publishingIntervalMs: 100, samplingIntervalMs: 50 })
    gateway = await Gateway.start(config, { logger, processMetrics: false })
    await waitFor(async () => ((await metric('gateway_input_connected')) === 1 ? true : undefined), { timeoutMs: 20_000, what: 'the session' })
  })
  afterAll(async () => {
    await gateway?.stop()
    await plant?.stop()
    removeTestDir(root)
  })

  it('notices a session the server dropped without cutting TCP, and sets the link up again', async () => {
    // node-opcua 2.182.2 emits nothing for this (its publish engine just stops): the link's
    // liveness watchdog does, after 2 × 10 keep-alive counts × 100 ms + 2 s of silence.
    const reconnects = await metric('gateway_input_reconnects_total')
    expect(plant.dropSessions()).toBe(1)
    await waitFor(async () => ((await metric('gateway_input_reconnects_total')) === reconnects + 1 ? true : undefined), {
      timeoutMs: 20_000,
      what: 'the link set up again',
    })
    expect(lines.some((l) => l.includes('"code":"GW_OPCUA_LINK_SILENT"') && l.includes('no keep-alive or notification'))).toBe(true)
    await waitFor(async () => ((await metric('gateway_input_connected')) === 1 ? true : undefined), { timeoutMs: 20_000, what: 'the new session' })
    expect([plant.sessionCount, plant.subscriptionCount]).toEqual([1, 1])
    plant.setValue('gas-01', 6.66)
    await waitFor(() => gateway.outbox.peek(10_000).find((r) => r.body.includes('"value":6.66')), { what: 'a value on the new session' })
  })
})
