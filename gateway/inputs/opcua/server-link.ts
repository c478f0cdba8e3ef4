/**
 * One plant server: the OPC UA client, its session, one subscription holding every configured
 * item, and what happens when the link breaks.
 *
 * Reconnection belongs to node-opcua, and this file deliberately does not repeat it. When the
 * channel breaks, the 2.182 client opens a new one (backoff with jitter, `connectionStrategy`),
 * then repairs the session (reconnection.ts in node-opcua-client), following OPC UA Part 4, 6.7:
 * - ActivateSession on the old session works (a network loss shorter than the session timeout):
 *   Republish, and the same subscription carries on;
 * - it fails (the server restarted, the session is gone): CreateSession + ActivateSession, then
 *   TransferSubscriptions (Part 4, 5.13.7); what cannot be transferred is re-created, with its
 *   monitored items, on the same ClientSubscription object, whose listeners stay attached.
 * So the client re-creates the subscription exactly once by itself. Creating another one on
 * `connection_reestablished` (as many applications do) would leave two subscriptions delivering
 * every item: test/integration/input-opcua.test.ts guards that. This file re-creates the whole
 * link (a new client, after closing the old one) only when the library gives up: the server
 * terminated the subscription (its lifetime ran out, Part 4, 5.13.1.1 h) or closed the session,
 * or the subscription went silent for longer than its keep-alive allows (liveness.ts: a session
 * the server dropped without cutting TCP raises no event in node-opcua 2.182.2).
 */
import {
  AttributeIds,
  ClientMonitoredItemGroup,
  DataChangeFilter,
  DataType,
  DataChangeTrigger,
  DeadbandType,
  MessageSecurityMode,
  OPCUAClient,
  SecurityPolicy,
  TimestampsToReturn,
  type ClientSession,
  type ClientSubscription,
  type DataValue,
  type MonitoringParametersOptions,
  type OPCUACertificateManager,
} from 'node-opcua'
import { LogLimiter } from '../../../common/log-limiter.ts'
import type { Logger } from '../../../common/logger.ts'
import type { Pipeline } from '../../pipeline.ts'
import type { InputMetrics } from '../input.ts'
import type { OpcuaItemSettings, OpcuaServerSettings } from './config.ts'
import { LivenessWatchdog, silenceLimitMs } from './liveness.ts'
import { NotificationConverter, isGood } from './notification.ts'

export interface ServerLinkDeps {
  input: string
  pipeline: Pipeline
  logger: Logger
  metrics: InputMetrics
  certificateManager: OPCUACertificateManager
  applicationUri: string
  unitOf: (quantity: string) => string | undefined
}

/** Monitored items per CreateMonitoredItems call: under common server limits (Part 5, OperationLimits). */
const ITEMS_PER_CALL = 1000
/** Publishing intervals without a notification before the server sends a keep-alive (Part 4, 5.13.1.1). */
const MAX_KEEPALIVE_COUNT = 10
/** Keep-alive periods without a Publish request before the server deletes the subscription. */
const LIFETIME_KEEPALIVES = 6
/** A close that the server does not answer must not hold the gateway's shutdown. */
const CLOSE_TIMEOUT_MS = 3000
/**
 * The longest one CreateMonitoredItems call may take. node-opcua's own request timeout does not
 * cover the case this guards: a group whose subscription is gone never sends the request at all.
 */
const MONITOR_TIMEOUT_MS = 30_000

export class ServerLink {
  private client: OPCUAClient | undefined
  private session: ClientSession | undefined
  private subscription: ClientSubscription | undefined
  private sessionUp = false
  private stopping = false
  /** establish() is running: what ends the link now fails its setup, which retries by itself. */
  private settingUp = false
  private establishing: Promise<void> | undefined
  /** Aborted by stop(): ends a backoff sleep or a wait for monitored items at once. */
  private halt = new AbortController()
  private readonly liveness: LivenessWatchdog
  private readonly converter: NotificationConverter
  private readonly warnLimiter = new LogLimiter()
  private pendingFrames = 0
  private invalidItems = 0
  readonly log: Logger

  constructor(
    readonly settings: OpcuaServerSettings,
    private readonly deps: ServerLinkDeps,
  ) {
    this.converter = new NotificationConverter(settings.items, deps.unitOf)
    this.log = deps.logger.child({ server: settings.name })
    this.liveness = new LivenessWatchdog((silentMs) => {
      this.log.warn({ code: 'GW_OPCUA_LINK_SILENT', silentMs }, 'no keep-alive or notification from the OPC UA subscription; setting the link up again')
      this.restart()
    })
  }

  get name(): string {
    return this.settings.name
  }

  /** The session is active and the subscription exists. */
  get up(): boolean {
    return this.sessionUp
  }

  get invalidItemCount(): number {
    return this.invalidItems
  }

  start(): void {
    this.stopping = false
    this.halt = new AbortController()
    this.deps.metrics.connected(this.name, false)
    this.settingUp = true
    this.establishing = this.establish()
  }

  /**
   * Bounded: the gateway's stop awaits it before it flushes and closes the outbox. A setup that
   * is stuck in a node-opcua call which never settles is abandoned (CLOSE_TIMEOUT_MS); establish()
   * checks `stopping` after every step and closes what it opened after this returned.
   */
  async stop(): Promise<void> {
    this.stopping = true
    this.liveness.disarm()
    this.halt.abort()
    await this.teardown()
    if (this.establishing) await bounded(this.establishing, CLOSE_TIMEOUT_MS)
    this.markDown()
  }

  /** Connect, open a session, subscribe; on failure close what was opened and retry with backoff. */
  private async establish(): Promise<void> {
    const { initialDelayMs, maxDelayMs } = this.settings.reconnect
    let delay = initialDelayMs
    try {
      for (let attempt = 1; !this.stopping; attempt++) {
        try {
          await this.connect()
          return
        } catch (err) {
          if (this.stopping) break
          const wait = Math.round(delay * (0.8 + Math.random() * 0.4))
          this.log.warn({ err, code: 'GW_OPCUA_CONNECT_FAILED', endpoint: this.settings.endpointUrl, attempt, retryInMs: wait }, 'could not set up the OPC UA session')
          await this.teardown()
          await this.sleep(wait)
          delay = Math.min(delay * 2, maxDelayMs)
        }
      }
      // Stopped while connect() was opening: close what it opened after stop()'s own teardown.
      await this.teardown()
    } finally {
      this.settingUp = false
    }
  }

  /** Thrown after each step of connect() once stop() was called, so no step starts after it. */
  private checkStopping(): void {
    if (this.stopping) throw new Error('the OPC UA input is stopping')
  }

  private async connect(): Promise<void> {
    const s = this.settings
    const client = OPCUAClient.create({
      applicationName: 'GridWatch gateway',
      applicationUri: this.deps.applicationUri,
      clientName: `gridwatch-${s.name}`,
      clientCertificateManager: this.deps.certificateManager,
      securityMode: MessageSecurityMode[s.securityMode],
      securityPolicy: SecurityPolicy[s.securityPolicy],
      // Discovery happens in connect(): the endpoint list may name another host than the one dialled.
      endpointMustExist: false,
      requestedSessionTimeout: s.sessionTimeoutMs,
      // The client's own backoff for the channel (first connect and every reconnection): doubling,
      // bounded, with ±20 % jitter. maxRetry -1 keeps it trying; stop() cancels it.
      connectionStrategy: { initialDelay: s.reconnect.initialDelayMs, maxDelay: s.reconnect.maxDelayMs, maxRetry: -1, randomisationFactor: 0.2 },
    })
    this.client = client
    client.on('backoff', (retry: number, delayMs: number) => {
      if (this.warnLimiter.take('backoff') >= 0) this.log.warn({ code: 'GW_OPCUA_CONNECT_FAILED', retry, retryInMs: delayMs }, 'OPC UA server unreachable, retrying')
    })
    client.on('connection_lost', () => {
      if (this.stopping || this.client !== client) return
      this.log.warn({ code: 'GW_OPCUA_CONNECT_FAILED' }, 'OPC UA connection lost; the client reconnects and repairs the session')
      this.markDown()
      // Silence is expected while node-opcua reconnects (its backoff may exceed the limit).
      this.liveness.disarm()
    })
    client.on('connection_reestablished', () => {
      if (this.stopping || this.client !== client) return
      // Emitted after node-opcua repaired the session and its subscription (see the file comment).
      this.deps.metrics.reconnect(this.name)
      this.log.info({ subscriptionId: this.subscription?.subscriptionId }, 'OPC UA session repaired')
      this.markUp()
      if (this.subscription && !this.settingUp) this.liveness.arm(silenceLimitMs(this.subscription.publishingInterval, this.subscription.maxKeepAliveCount))
    })

    await client.connect(s.endpointUrl)
    this.checkStopping()
    const session = await client.createSession()
    this.session = session
    this.checkStopping()
    // Only the client's own CloseSession emits this in 2.182.2; a session the server drops is
    // caught by the liveness watchdog instead.
    session.on('session_closed', () => {
      if (this.stopping || this.session !== session) return
      this.log.warn({ code: 'GW_OPCUA_CONNECT_FAILED' }, 'the OPC UA server closed the session; setting the link up again')
      this.restart()
    })

    const subscription = await session.createSubscription2({
      requestedPublishingInterval: s.publishingIntervalMs,
      requestedMaxKeepAliveCount: MAX_KEEPALIVE_COUNT,
      requestedLifetimeCount: MAX_KEEPALIVE_COUNT * LIFETIME_KEEPALIVES,
      // 0: no limit; a publish after a long sampling pause carries every item.
      maxNotificationsPerPublish: 0,
      publishingEnabled: true,
      priority: 10,
    })
    this.subscription = subscription
    this.checkStopping()
    subscription.on('terminated', () => {
      if (this.stopping || this.subscription !== subscription) return
      this.log.warn({ code: 'GW_OPCUA_CONNECT_FAILED' }, 'the OPC UA server ended the subscription; setting the link up again')
      this.restart()
    })
    // Every Publish response: a keep-alive when nothing changed, else notifications.
    subscription.on('keepalive', () => this.liveness.feed())
    subscription.on('received_notifications', () => this.liveness.feed())
    await this.monitor(subscription)
    this.checkStopping()
    // Ended between the last group and here: the 'terminated' handler left it to this setup.
    if (!subscription.isActive) throw new Error('the OPC UA subscription ended while it was being set up')
    this.log.info(
      { endpoint: s.endpointUrl, securityMode: s.securityMode, items: s.items.length, invalidItems: this.invalidItems, subscriptionId: subscription.subscriptionId },
      'OPC UA subscription set up',
    )
    this.markUp()
    this.liveness.arm(silenceLimitMs(subscription.publishingInterval, subscription.maxKeepAliveCount))
  }

  /** Creates the monitored items, grouped by their parameters, ITEMS_PER_CALL at a time. */
  private async monitor(subscription: ClientSubscription): Promise<void> {
    const groups = new Map<string, number[]>()
    this.settings.items.forEach((item, index) => {
      const key = `${item.samplingIntervalMs}/${item.queueSize}/${item.deadband?.type ?? ''}/${item.deadband?.value ?? ''}`
      const list = groups.get(key)
      if (list) list.push(index)
      else groups.set(key, [index])
    })
    this.invalidItems = 0
    for (const indexes of groups.values()) {
      const first = this.settings.items[indexes[0]]
      for (let from = 0; from < indexes.length; from += ITEMS_PER_CALL) {
        const chunk = indexes.slice(from, from + ITEMS_PER_CALL)
        // A group on an ended subscription would never be created (see monitoredItemsCreated).
        if (!subscription.isActive) throw new Error('the OPC UA subscription ended while its monitored items were being created')
        const group = ClientMonitoredItemGroup.create(
          subscription,
          chunk.map((i) => ({ nodeId: this.settings.items[i].nodeId, attributeId: AttributeIds.Value })),
          monitoringParameters(first),
          TimestampsToReturn.Both,
        )
        // Listening before the group is created: the initial values follow the create response.
        group.on('changed', (_item, dataValue: DataValue, i: number) => this.onChange(chunk[i], dataValue))
        await monitoredItemsCreated(group, subscription, MONITOR_TIMEOUT_MS, this.halt.signal)
        group.monitoredItems.forEach((mi, i) => {
          if (isGood(mi.statusCode.value)) return
          // Part 4, 5.12.2: a per-item result; BadNodeIdUnknown and friends leave the rest working.
          this.invalidItems++
          this.deps.metrics.rejected(this.name, 'node_invalid')
          this.log.warn({ code: 'GW_OPCUA_NODE_INVALID', nodeId: this.settings.items[chunk[i]].nodeId, status: mi.statusCode.name }, 'the server refused to monitor a configured node')
        })
      }
    }
  }

  private onChange(index: number, dv: DataValue): void {
    this.countFrame()
    const receivedAt = Date.now()
    const status = dv.statusCode
    const ts = dv.sourceTimestamp?.getTime() ?? dv.serverTimestamp?.getTime()
    const dataType = dv.value.dataType === DataType.Int64 ? 'Int64' : dv.value.dataType === DataType.UInt64 ? 'UInt64' : undefined
    const out = this.converter.convert(index, { value: dv.value.value, status: status.value, statusName: status.name, ts, dataType })
    if (!out.ok) {
      this.deps.metrics.rejected(this.name, out.reason)
      if (this.warnLimiter.take(`${index}:${out.reason}`) >= 0) {
        this.log.warn({ nodeId: this.settings.items[index].nodeId, dataType: DataType[dv.value.dataType] }, 'an OPC UA value is not a number; ignored')
      }
      // Still sent: the Good status may have cleared the device's fault (notification.ts).
    }
    if (!isGood(status.value) && out.messages.length > 0) {
      const item = this.settings.items[index]
      this.log.warn({ code: 'GW_OPCUA_BAD_STATUS', device: item.device, nodeId: item.nodeId, status: status.name }, 'sensor reports a fault through its status code')
    }
    for (const m of out.messages) {
      this.deps.pipeline.accept({ input: this.deps.input, deviceId: m.deviceId, kind: m.kind, raw: m.raw, receivedAt }, (err) => {
        // OPC UA has no per-notification acknowledgement to withhold: the client already sent the
        // next Publish. A failed commit is logged and the value is lost (docs/inputs/opcua.md).
        if (err && this.warnLimiter.take('commit') >= 0) this.log.error({ err, code: 'GW_OUTBOX_COMMIT_FAILED', device: m.deviceId }, 'could not commit an OPC UA value')
      })
    }
  }

  /** Frames are counted once per burst: a publish of 10,000 items is 10,000 notifications, one metric update. */
  private countFrame(): void {
    if (this.pendingFrames++ === 0) {
      setImmediate(() => {
        this.deps.metrics.frame(this.name, this.pendingFrames)
        this.pendingFrames = 0
      })
    }
  }

  private markUp(): void {
    this.sessionUp = true
    this.deps.metrics.connected(this.name, true)
  }

  private markDown(): void {
    this.sessionUp = false
    this.deps.metrics.connected(this.name, false)
  }

  /**
   * The library gave up on this session: close everything and set the link up from scratch.
   * Never waits on a running setup (it may be stuck on the very session that ended): that setup
   * fails on its own (its group wait listens for 'terminated', its calls fail) and retries.
   */
  private restart(): void {
    this.markDown()
    this.liveness.disarm()
    if (this.stopping || this.settingUp) return
    this.settingUp = true
    this.establishing = (async () => {
      await this.teardown()
      if (this.stopping) {
        this.settingUp = false
        return
      }
      this.deps.metrics.reconnect(this.name)
      await this.establish()
    })()
  }

  /** Closes the session (deleting its subscriptions on the server) and the client, each bounded. */
  private async teardown(): Promise<void> {
    const { client, session } = this
    this.client = undefined
    this.session = undefined
    this.subscription = undefined
    if (session) await bounded(session.close(true), CLOSE_TIMEOUT_MS)
    if (client) await bounded(client.disconnect(), CLOSE_TIMEOUT_MS)
  }

  private sleep(ms: number): Promise<void> {
    const signal = this.halt.signal
    return new Promise((resolve) => {
      if (signal.aborted) return resolve()
      const timer = setTimeout(done, ms)
      signal.addEventListener('abort', done, { once: true })
      function done() {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        resolve()
      }
    })
  }
}

/**
 * Settles once a ClientMonitoredItemGroup was created on the server, or could not be.
 *
 * node-opcua 2.182.2 (client_monitored_item_group_impl.js, ClientMonitoredItemGroup.create) waits
 * for the subscription to be ready and, if it was terminated meanwhile, returns without emitting
 * 'initialized' or 'err': a wait on those two alone never settles, and held restart() and stop()
 * with it. So the wait also ends on the subscription's 'terminated', a timeout, and stop().
 */
export function monitoredItemsCreated(group: ClientMonitoredItemGroup, subscription: ClientSubscription, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => settle(new Error(`CreateMonitoredItems did not complete within ${timeoutMs} ms`)), timeoutMs)
    const onInitialized = () => settle()
    const onErr = (message: string) => settle(new Error(`CreateMonitoredItems failed: ${message}`))
    const onTerminated = () => settle(new Error('the OPC UA subscription ended before its monitored items were created'))
    const onAbort = () => settle(new Error('the OPC UA input is stopping'))
    group.once('initialized', onInitialized)
    group.once('err', onErr)
    subscription.once('terminated', onTerminated)
    signal?.addEventListener('abort', onAbort, { once: true })
    if (signal?.aborted) onAbort()
    function settle(err?: Error) {
      clearTimeout(timer)
      group.off('initialized', onInitialized)
      group.off('err', onErr)
      subscription.off('terminated', onTerminated)
      signal?.removeEventListener('abort', onAbort)
      if (err) reject(err)
      else resolve()
    }
  })
}

/** Part 4, 7.21 MonitoringParameters with a 7.22.2 DataChangeFilter. */
function monitoringParameters(item: OpcuaItemSettings): MonitoringParametersOptions {
  return {
    samplingInterval: item.samplingIntervalMs,
    queueSize: item.queueSize,
    discardOldest: true,
    // StatusValue: a status change alone (Good → BadSensorFailure) must reach the gateway.
    filter: new DataChangeFilter({
      trigger: DataChangeTrigger.StatusValue,
      deadbandType: item.deadband === undefined ? DeadbandType.None : item.deadband.type === 'percent' ? DeadbandType.Percent : DeadbandType.Absolute,
      deadbandValue: item.deadband?.value ?? 0,
    }),
  }
}

async function bounded(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([work.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, ms)))])
  clearTimeout(timer)
}
