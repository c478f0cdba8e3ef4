/**
 * A simulated plant OPC UA server: one folder of gas, temperature and pressure variables, each an
 * AnalogItem with an EURange (OPC UA Part 8, 5.3.2) so a client may ask for a percent deadband.
 * Tests, the benchmark and `npm run devices` drive it: set a value, set a Bad or Uncertain status,
 * stop it and start it again on the same port (a plant server reboot: every session is gone).
 *
 * Values live here, outside the node-opcua server, so a restart serves the last values again, and
 * NodeIds are strings in a fixed namespace (`ns=2;s=Plant.<name>`) so they survive a restart.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import {
  DataType,
  MessageSecurityMode,
  OPCUACertificateManager,
  OPCUAServer,
  SecurityPolicy,
  StatusCode,
  StatusCodes,
  Variant,
  standardUnits,
  type UAVariable,
} from 'node-opcua'

export type PlantQuantity = 'gas' | 'temperature' | 'pressure'

export interface PlantVariable {
  /** Also the last part of its NodeId: `ns=2;s=Plant.<name>`. */
  name: string
  quantity: PlantQuantity
  value?: number
}

export interface PlantServerOptions {
  port: number
  /** The server's own PKI folder (own certificate, trusted clients). Kept across restarts. */
  pkiDir: string
  variables?: PlantVariable[]
  /**
   * Trust every client certificate. For tests and the simulator only: a real plant server trusts
   * the certificates its operator moved into `trusted/` (OPC UA Part 2, 8.1 application authentication).
   */
  acceptAnyClientCertificate?: boolean
}

export interface PlantServer {
  readonly endpointUrl: string
  readonly port: number
  readonly names: readonly string[]
  /** Subscriptions alive on the server right now (over every session). */
  readonly subscriptionCount: number
  readonly sessionCount: number
  /** Monitored items alive right now, over every subscription. */
  monitoredItemCount(): number
  /** The message security mode of each open session's channel: `None`, `SignAndEncrypt`. */
  sessionSecurityModes(): string[]
  /**
   * Closes every session and its subscriptions on the server side, leaving the TCP connections
   * and secure channels open: a server that dropped its sessions (an admin action, a server-side
   * timeout) while the network stayed up. The client hears of it only as BadSessionIdInvalid on
   * its next request. Returns how many sessions were closed.
   */
  dropSessions(): number
  /** The server's own certificate (PEM), for a client's trusted/ folder. */
  readonly certificateFile: string
  nodeId(name: string): string
  /** A new value with Good status; `sourceTimestamp` defaults to now. */
  setValue(name: string, value: number, sourceTimestamp?: Date): void
  /** The same value under another status, e.g. `BadSensorFailure` or `UncertainLastUsableValue`. */
  setStatus(name: string, status: string): void
  /** Every variable at once, for the benchmark: `valueOf(i)` for the i-th name. */
  setAll(valueOf: (i: number) => number): void
  stop(): Promise<void>
  /** Start again on the same port, with the same certificate and the last values. */
  start(): Promise<void>
  readonly running: boolean
}

/** EURange and unit per quantity, as the gateway's thresholds expect them. */
const QUANTITIES: Record<PlantQuantity, { low: number; high: number; unit: string; initial: number }> = {
  gas: { low: 0, high: 100, unit: '%LEL', initial: 0 },
  temperature: { low: -40, high: 150, unit: '°C', initial: 20 },
  pressure: { low: 0, high: 1600, unit: 'kPa', initial: 101.3 },
}

const NAMESPACE_URI = 'urn:gridwatch:plant-simulator'

/** `count` variables cycling through gas, temperature and pressure: gas-00001, temperature-00002, ... */
export function manyVariables(count: number): PlantVariable[] {
  const kinds: PlantQuantity[] = ['gas', 'temperature', 'pressure']
  return Array.from({ length: count }, (_, i) => {
    const quantity = kinds[i % kinds.length]
    return { name: `${quantity}-${String(i + 1).padStart(5, '0')}`, quantity }
  })
}

export const defaultPlantVariables: PlantVariable[] = [
  { name: 'gas-01', quantity: 'gas' },
  { name: 'temperature-01', quantity: 'temperature' },
  { name: 'pressure-01', quantity: 'pressure' },
]

interface Slot {
  quantity: PlantQuantity
  value: number
  status: StatusCode
  sourceTimestamp: Date
  node?: UAVariable
}

export async function startPlantServer(options: PlantServerOptions): Promise<PlantServer> {
  const variables = options.variables ?? defaultPlantVariables
  const slots = new Map<string, Slot>()
  for (const v of variables) {
    if (slots.has(v.name)) throw new Error(`duplicate plant variable "${v.name}"`)
    slots.set(v.name, { quantity: v.quantity, value: v.value ?? QUANTITIES[v.quantity].initial, status: StatusCodes.Good, sourceTimestamp: new Date() })
  }
  const ordered = [...slots.values()]
  let server: OPCUAServer | undefined
  // Index 1 is the server's own namespace; ours comes next, in the same place after every restart.
  let nsIndex = 2

  const publish = (slot: Slot) => {
    slot.node?.setValueFromSource(new Variant({ dataType: DataType.Double, value: slot.value }), slot.status, slot.sourceTimestamp)
  }

  async function start(): Promise<void> {
    if (server) return
    mkdirSync(options.pkiDir, { recursive: true })
    const certificateManager = new OPCUACertificateManager({
      rootFolder: options.pkiDir,
      automaticallyAcceptUnknownCertificate: options.acceptAnyClientCertificate ?? false,
      // Tests start and stop servers often; file watchers would pile up in libuv's pool.
      disableFileWatchers: true,
    })
    await certificateManager.initialize()
    const s = new OPCUAServer({
      port: options.port,
      hostname: '127.0.0.1',
      alternateHostname: ['127.0.0.1'],
      resourcePath: '/UA/Plant',
      buildInfo: { productName: 'GridWatch plant simulator', manufacturerName: 'GridWatch' },
      serverCertificateManager: certificateManager,
      securityModes: [MessageSecurityMode.None, MessageSecurityMode.SignAndEncrypt],
      securityPolicies: [SecurityPolicy.None, SecurityPolicy.Basic256Sha256],
      allowAnonymous: true,
      serverCapabilities: { maxSessions: 50, maxSubscriptionsPerSession: 20, operationLimits: { maxNodesPerRead: 10_000, maxNodesPerBrowse: 10_000, maxMonitoredItemsPerCall: 10_000 } },
    })
    await s.initialize()
    const addressSpace = s.engine.addressSpace!
    const ns = addressSpace.registerNamespace(NAMESPACE_URI)
    nsIndex = ns.index
    const folder = ns.addFolder(addressSpace.rootFolder.objects, { browseName: 'Plant', nodeId: 's=Plant' })
    for (const [name, slot] of slots) {
      const q = QUANTITIES[slot.quantity]
      slot.node = ns.addAnalogDataItem({
        organizedBy: folder,
        browseName: name,
        nodeId: `s=Plant.${name}`,
        dataType: 'Double',
        engineeringUnitsRange: { low: q.low, high: q.high },
        engineeringUnits: q.unit === '°C' ? standardUnits.degree_celsius : q.unit === 'kPa' ? standardUnits.kilopascal : standardUnits.percent,
        // 0: the server reports a change as it happens rather than by polling the node (Part 4, 5.12.1.2).
        minimumSamplingInterval: 0,
      })
      publish(slot)
    }
    await s.start()
    server = s
  }

  await start()

  const slotOf = (name: string): Slot => {
    const slot = slots.get(name)
    if (!slot) throw new Error(`no plant variable "${name}"`)
    return slot
  }

  return {
    endpointUrl: `opc.tcp://127.0.0.1:${options.port}/UA/Plant`,
    port: options.port,
    names: [...slots.keys()],
    get running() {
      return server !== undefined
    },
    get subscriptionCount() {
      return server?.currentSubscriptionCount ?? 0
    },
    get sessionCount() {
      return server?.currentSessionCount ?? 0
    },
    monitoredItemCount() {
      if (!server) return 0
      let n = 0
      for (const session of server.engine.getSessions()) {
        for (const sub of session.publishEngine.subscriptions) n += sub.monitoredItemCount
      }
      return n
    },
    sessionSecurityModes() {
      return (server?.engine.getSessions() ?? []).map((session) => MessageSecurityMode[session.channel?.securityMode ?? MessageSecurityMode.Invalid])
    },
    dropSessions() {
      if (!server) return 0
      const sessions = server.engine.getSessions()
      // 'Forcing' as the Part 5 SessionDiagnostics reason; true: delete the subscriptions too.
      for (const session of sessions) server.engine.closeSession(session.authenticationToken, true, 'Forcing')
      return sessions.length
    },
    certificateFile: join(options.pkiDir, 'own', 'certs', 'certificate.pem'),
    nodeId: (name) => {
      slotOf(name)
      return `ns=${nsIndex};s=Plant.${name}`
    },
    setValue(name, value, sourceTimestamp = new Date()) {
      const slot = slotOf(name)
      slot.value = value
      slot.status = StatusCodes.Good
      slot.sourceTimestamp = sourceTimestamp
      publish(slot)
    },
    setStatus(name, status) {
      const slot = slotOf(name)
      const code = (StatusCodes as unknown as Record<string, unknown>)[status]
      if (!(code instanceof StatusCode)) throw new Error(`no status code "${status}"`)
      slot.status = code
      slot.sourceTimestamp = new Date()
      publish(slot)
    },
    setAll(valueOf) {
      const now = new Date()
      for (let i = 0; i < ordered.length; i++) {
        const slot = ordered[i]
        slot.value = valueOf(i)
        slot.status = StatusCodes.Good
        slot.sourceTimestamp = now
        publish(slot)
      }
    },
    async stop() {
      const s = server
      if (!s) return
      server = undefined
      for (const slot of ordered) slot.node = undefined
      // No grace period: a plant server that reboots does not wait for its clients either.
      await s.shutdown(0)
      await s.serverCertificateManager.dispose()
    },
    start,
  }
}
