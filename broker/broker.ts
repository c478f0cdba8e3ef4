/**
 * The street-office MQTT broker: Aedes with GridWatch's identity, ACL, protection, durability
 * and ingest hooks.
 *
 * The ingest hook runs inside `authorizePublish`, which Aedes awaits before it writes the PUBACK
 * (lib/handlers/publish.js: authorizePublish → enqueuePublish → PubAck). Aedes's own `published`
 * hook runs only after the PUBACK has gone out, so it cannot carry a durability promise. Hence:
 * when the broker runs inside the gateway, a device's PUBACK means its message is committed to the
 * gateway's outbox. Standalone, the same place writes a QoS 1 message's queue rows for persistent
 * sessions ahead (broker/persistence.ts), because Aedes PUBACKs before it routes.
 *
 * Aedes reads a client's next packets only after the current batch is handled, so holding back the
 * `authorizePublish` callback is real back-pressure: the client's socket is not read, TCP fills,
 * and the publisher slows down. The rate limits use that instead of dropping anything.
 */
import { Aedes, type AedesOptions, type AuthenticateError, type Client, type PublishPacket } from 'aedes'
import type { Registry } from 'prom-client'
import { LogLimiter } from '../common/log-limiter.ts'
import { silentLogger, type Logger } from '../common/logger.ts'
import { isWellFormed, mayPublish, mayReceive, maySubscribe, type Identity } from './acl.ts'
import type { BrokerSettings } from './config.ts'
import { TokenBucket } from './limits.ts'
import { startListeners, type Listeners } from './listeners.ts'
import { BrokerMetrics, type ListenerName } from './metrics.ts'
import { PREVIOUS_RUN, SqlitePersistence } from './persistence.ts'
import type { DeviceRegistry } from './registry.ts'

/** CONNACK 2 (identifier rejected), then the connection closes: Aedes ends it on the error. */
function refuseConnect(client: Client, done: (err: Error | null, ok: boolean) => void, why: string): void {
  ;(client.conn as { write(b: Buffer): void }).write(Buffer.from([0x20, 0x02, 0x00, IDENTIFIER_REJECTED]))
  done(new Error(why), false)
}

/** CONNACK return codes, MQTT 3.1.1 §3.2.2.3. */
const IDENTIFIER_REJECTED = 2
const SERVER_UNAVAILABLE = 3
const BAD_USERNAME_OR_PASSWORD = 4
const NOT_AUTHORIZED = 5

/**
 * Whose a session is: the device or gateway that opened it, or '' for lab mode's anonymous clients.
 * The client id is free (docs/contracts.md), so it is not what says who may resume a session.
 */
const sessionOwner = (identity: Identity): string => (identity.deviceId === undefined ? '' : `${identity.role ?? 'device'}:${identity.deviceId}`)

/**
 * Called for every authorised publish before the broker acknowledges it. Call back with no error
 * to acknowledge; with an error to refuse (the client is disconnected without a PUBACK and will
 * resend). A callback, not a promise: it runs once per message.
 */
export type IngestHook = (identity: Identity, packet: PublishPacket, client: Client | null, done: (err: Error | null) => void) => void

export interface PresenceHook {
  /** A device passed CONNACK. */
  online(identity: Identity, client: Client): void
  /** Its connection ended; `graceful` is a DISCONNECT packet (no Will fires). */
  offline(identity: Identity, client: Client, graceful: boolean): void
}

export interface BrokerOptions {
  settings: BrokerSettings
  registry: DeviceRegistry
  ingest?: IngestHook
  presence?: PresenceHook
  logger?: Logger
  metrics?: Registry
  /** Stable broker id, so a restarted broker recognises its own persisted state. */
  id?: string
}

export interface RunningBroker {
  aedes: Aedes
  /** Bound ports (useful with port 0), per listener that is on. */
  ports: Partial<Record<ListenerName, number>>
  /** Kept for callers that only use TCP. */
  tcpPort: number | undefined
  /** Identity of a connected client, for presence and commands. */
  identityOf(client: Client): Identity | undefined
  close(): Promise<void>
}

interface ClientState {
  identity: Identity
  listener: ListenerName
  rate: TokenBucket
  /** Publishes held back by pace(), in arrival order. */
  held: (() => void)[]
  releaseTimer: NodeJS.Timeout | undefined
}

export async function startBroker(options: BrokerOptions): Promise<RunningBroker> {
  const { settings } = options
  const log = options.logger ?? silentLogger()
  const metrics = new BrokerMetrics(options.metrics)
  const states = new WeakMap<Client, ClientState>()
  const limits = settings.limits
  const warnings = new LogLimiter()
  /** Clients being closed for a malformed packet, counted once. */
  const violators = new WeakSet<Client>()
  // Counted once per message in and once per delivery: resolve the label children once, not per call.
  let listeners: Listeners | undefined

  if (settings.allowAnonymous) {
    log.warn(
      { code: 'BROKER_ANONYMOUS' },
      'allowAnonymous is on: any client may connect and publish anywhere. For lab and interop use only.',
    )
  }

  const refuse = (returnCode: AuthenticateError['returnCode'], message: string): AuthenticateError =>
    Object.assign(new Error(message), { returnCode })

  const persistence = settings.persistence.path ? new SqlitePersistence({ path: settings.persistence.path, synchronous: settings.persistence.synchronous, logger: log }) : undefined

  /** Client id → sessionOwner of the identity whose session it is (kept on disk with the sessions). */
  const owners = persistence?.sessionOwners() ?? new Map<string, string>()

  const aedesOptions: AedesOptions = {
    ...(options.id ? { id: options.id } : {}),
    ...(persistence ? { persistence } : {}),
    // Aedes's default of 23 is MQTT 3.1's limit; 3.1.1 lets servers accept longer ids (§3.1.3.1).
    maxClientsIdLength: 128,
    // Not Aedes's keepaliveLimit: it answers CONNACK 6, which MQTT 3.1.1 does not define. See preConnect.
    drainTimeout: limits.drainTimeoutMs,
    connectTimeout: limits.connectTimeoutMs,
    preConnect(client, packet, done) {
      const listener = () => listeners?.info(client.conn)?.listener ?? 'tcp'
      const remote = () => listeners?.info(client.conn)?.remote
      const { clientId, clean, protocolVersion, will, username } = packet as { clientId?: string; clean?: boolean; protocolVersion?: number; will?: { qos?: number }; username?: string }
      // Protocol violations close the connection without a CONNACK (MQTT-4.8.0-1): a Will QoS of
      // 3 (MQTT-3.1.2-14), and a client id or user name with U+0000 (MQTT-1.5.3-2) or ill-formed
      // UTF-8 (MQTT-1.5.3-1), which mqtt-packet has decoded to U+FFFD by now.
      const violation = will?.qos === 3 ? 'will_qos' : !isWellFormed(clientId) || !isWellFormed(username) ? 'malformed_string' : undefined
      if (violation !== undefined) {
        metrics.connectionsRefused.inc({ listener: listener(), reason: violation })
        const heldBack = warnings.take(`${violation}:${remote()}`)
        if (heldBack >= 0) log.warn({ code: 'BROKER_PROTOCOL_VIOLATION', reason: violation, listener: listener(), remote: remote(), heldBack }, 'connection closed: malformed CONNECT')
        return done(new Error(`malformed CONNECT: ${violation}`), false)
      }
      // An empty client id is a request for a session the server names, which cannot be resumed
      // later: only with CleanSession 1 (MQTT-3.1.3-8: otherwise CONNACK 2 and close), and never
      // in MQTT 3.1, whose client ids are 1 to 23 characters. Aedes would name it and go on.
      if (!clientId && (clean === false || protocolVersion === 3)) {
        metrics.connectionsRefused.inc({ listener: listener(), reason: 'client_id' })
        const heldBack = warnings.take(`client_id:${remote()}`)
        if (heldBack >= 0) log.warn({ code: 'BROKER_CLIENT_ID_REFUSED', clean, protocolVersion, listener: listener(), remote: remote(), heldBack }, 'connection refused: empty client id without a clean session')
        return refuseConnect(client, done, 'empty client id without a clean session')
      }
      // Keepalive enforcement. A keepalive over the maximum is refused as Mosquitto's max_keepalive
      // does: 3.1.1 has no code for it, so CONNACK 2 (identifier rejected) and close. A keepalive
      // of 0 turns the client's own checks off (3.1.1 §3.1.2.10), which every client may ask; the
      // server "is permitted to disconnect a Client that it determines to be inactive ... at any
      // time", so such a client is held to the maximum instead, and a dead connection still ends.
      const max = limits.keepaliveMaxSeconds
      const keepalive = (packet as { keepalive?: number }).keepalive ?? 0
      if (max > 0 && keepalive > max) {
        metrics.connectionsRefused.inc({ listener: listener(), reason: 'keepalive' })
        const heldBack = warnings.take(`keepalive:${remote()}`)
        if (heldBack >= 0) log.warn({ code: 'BROKER_KEEPALIVE_REFUSED', clientId, keepalive, max, listener: listener(), remote: remote(), heldBack }, 'connection refused: keepalive out of range')
        return refuseConnect(client, done, 'keepalive out of range')
      }
      if (max > 0 && keepalive === 0) {
        // Said once per connection, so a device that then goes quiet for longer than 1.5× the
        // maximum and is disconnected for it can be told apart from a dead one.
        log.info({ code: 'BROKER_KEEPALIVE_HELD', clientId, max, listener: listener() }, 'keepalive 0 asked for: held to the maximum')
        ;(packet as { keepalive?: number }).keepalive = max
      }
      done(null, true)
    },
    authenticate(client, username, password, done) {
      const info = listeners?.info(client.conn)
      const listener = info?.listener ?? 'tcp'
      const fail = (reason: string, code: number) => {
        metrics.authFailures.inc({ reason })
        // Never the password: only who tried, from where, and why it failed. A client retrying in
        // a loop gets one line per 10 s with the count held back; the metric counts every try.
        const heldBack = warnings.take(`auth:${reason}:${username}:${info?.remote}`)
        if (heldBack >= 0) log.warn({ code: 'BROKER_AUTH_REFUSED', reason, clientId: client.id, username, listener, remote: info?.remote, heldBack }, 'connection refused')
        done(refuse(code, reason), false)
      }
      const admit = (identity: Identity) => {
        // A session is its owner's: another identity may neither take over its live connection
        // nor resume it (its queued commands) nor, with CleanSession 1, wipe it.
        // (The claim itself is made once the connection is up: see the 'client' handler.)
        const recorded = owners.get(client.id)
        if (recorded !== undefined && recorded !== sessionOwner(identity)) return fail('client_id_taken', IDENTIFIER_REJECTED)
        // A Will is a deferred publish: refuse the CONNECT now rather than let it fire into
        // someone else's topic later. Aedes keeps it on `_will` until the session is set up.
        const will = (client as Client & { _will?: PublishPacket })._will
        if (will && !mayPublish(identity, will.topic, settings.allowAnonymous)) {
          metrics.aclDenied.inc({ action: 'will' })
          return fail('will_topic_denied', NOT_AUTHORIZED)
        }
        states.set(client, {
          identity,
          listener,
          rate: new TokenBucket(limits.messagesPerSecondPerClient, limits.messagesPerSecondPerClient),
          held: [],
          releaseTimer: undefined,
        })
        done(null, true)
      }

      // A verified client certificate names the device; a password is then not needed, and a
      // username, if given, must agree with the certificate.
      const certified = info?.certificateNames.filter((name) => options.registry.has(name)) ?? []
      if (certified.length > 0) {
        if (username !== undefined && !certified.includes(username)) return fail('certificate_mismatch', NOT_AUTHORIZED)
        const deviceId = username ?? certified[0]
        return admit({ deviceId, role: options.registry.roleOf(deviceId) })
      }
      if (username === undefined && password === undefined) {
        if (settings.allowAnonymous) return admit({ deviceId: undefined })
        return fail('anonymous', NOT_AUTHORIZED)
      }
      const open = () => !(client.conn as { destroyed?: boolean }).destroyed
      options.registry.authenticate(username, password, open).then(
        (result) => {
          if (!result.ok) return fail(result.reason, BAD_USERNAME_OR_PASSWORD)
          admit({ deviceId: result.deviceId, role: result.role })
        },
        (err: unknown) => {
          log.error({ err, code: 'BROKER_AUTH_ERROR' }, 'authentication failed unexpectedly')
          done(refuse(SERVER_UNAVAILABLE, 'server unavailable'), false)
        },
      )
    },
    authorizePublish(client, packet, done) {
      // client is null when Aedes replays a persisted Will after a restart; the Will's topic was
      // checked at CONNECT, and its owner is the device named in the topic.
      const state = client ? states.get(client) : undefined
      const identity = client ? state?.identity : willOwner(packet.topic)
      if (!identity || !mayPublish(identity, packet.topic, settings.allowAnonymous)) {
        const action = packet.retain ? 'retain' : 'publish'
        metrics.aclDenied.inc({ action })
        metrics.dropped.inc({ reason: 'acl' })
        const heldBack = warnings.take(`publish:${identity?.deviceId}:${packet.topic}`)
        if (heldBack >= 0) log.warn({ code: 'BROKER_PUBLISH_DENIED', action, clientId: client?.id, device: identity?.deviceId, topic: packet.topic, heldBack }, 'publish denied')
        return done(new Error('publish not authorized'))
      }
      if (state) metrics.traffic[state.listener].messagesIn++
      // The DUP flag of what is delivered is the broker's own: a redelivery of its own sending
      // (MQTT-3.3.1-3), never the publisher's retry flag, and never set at QoS 0 (MQTT-3.3.1-2).
      packet.dup = false
      const proceed = () => {
        if (options.ingest) return options.ingest(identity, packet, client, done)
        // Standalone: make the PUBACK mean "queued on disk for every persistent subscriber".
        if (persistence && packet.qos === 1) return void persistence.queueAhead(packet).then(() => done(null), (err: Error) => done(err))
        done(null)
      }
      if (!state) return proceed()
      pace(state, aedes, limits.maxInFlightRouted, metrics, proceed)
    },
    authorizeSubscribe(client, subscription, done) {
      const identity = states.get(client)?.identity
      // A filter with U+0000 or ill-formed UTF-8 is a malformed packet, not a refused filter: the
      // connection closes (MQTT-4.7.3-2, MQTT-1.5.3-1), as Aedes does for a misplaced wildcard.
      // Not while a session is being resumed (the CONNECT is still in hand): a filter stored by an
      // older version is dropped instead, or the session could never be resumed again.
      if (!isWellFormed(subscription.topic)) {
        if ((client as Client & { connecting?: boolean }).connecting) return done(null, null)
        // Aedes checks each filter of the SUBSCRIBE before it closes: one count and line per connection.
        if (!violators.has(client)) {
          violators.add(client)
          metrics.disconnects.inc({ reason: 'protocol_violation' })
          const remote = listeners?.info(client.conn)?.remote
          const heldBack = warnings.take(`protocol:malformed_filter:${remote}`)
          if (heldBack >= 0) log.warn({ code: 'BROKER_PROTOCOL_VIOLATION', reason: 'malformed_filter', clientId: client.id, device: identity?.deviceId, remote, heldBack }, 'connection closed: malformed topic filter')
        }
        return done(new Error('malformed topic filter'), null)
      }
      if (!identity || !maySubscribe(identity, subscription.topic, settings.allowAnonymous)) {
        metrics.aclDenied.inc({ action: 'subscribe' })
        const heldBack = warnings.take(`subscribe:${identity?.deviceId}:${subscription.topic}`)
        if (heldBack >= 0) log.warn({ code: 'BROKER_SUBSCRIBE_DENIED', clientId: client.id, device: identity?.deviceId, topic: subscription.topic, heldBack }, 'subscribe denied')
        // A null subscription makes Aedes answer SUBACK 0x80 for this filter (3.1.1 §3.9.3).
        return done(null, null)
      }
      done(null, subscription)
    },
    authorizeForward(client, packet) {
      const state = states.get(client)
      if (!state || !mayReceive(state.identity, packet.topic, settings.allowAnonymous)) {
        // Not delivered; Aedes then clears it from a persistent session's queue.
        metrics.aclDenied.inc({ action: 'deliver' })
        metrics.dropped.inc({ reason: 'acl' })
        const heldBack = warnings.take(`deliver:${state?.identity.deviceId}:${packet.topic}`)
        if (heldBack >= 0) log.warn({ code: 'BROKER_DELIVERY_DENIED', clientId: client.id, device: state?.identity.deviceId, topic: packet.topic, heldBack }, 'delivery denied')
        return null
      }
      metrics.traffic[state.listener].messagesOut++
      return packet
    },
  }
  const aedes = await Aedes.createBroker(aedesOptions)
  // Aedes stores a SUBSCRIBE's whole filter list in the session, refused filters included
  // (handlers/subscribe.js storeSubscriptions, once per filter, some before the others are
  // authorized), and a persistent session then queues what they match while the client is away.
  // Only filters the ACL grants this client are kept.
  const store = (aedes as unknown as { persistence: { addSubscriptions(client: Client, subs: { topic: string }[]): Promise<void> } }).persistence
  const addSubscriptions = store.addSubscriptions.bind(store)
  store.addSubscriptions = (client, subs) => {
    const identity = states.get(client)?.identity
    // (A malformed filter closes the connection, but Aedes stores the SUBSCRIBE's list while the
    // filters are still being checked, so it is kept out here too.)
    const granted = identity ? subs.filter((sub) => isWellFormed(sub.topic) && maySubscribe(identity, sub.topic, settings.allowAnonymous)) : []
    return granted.length === subs.length ? addSubscriptions(client, subs) : granted.length > 0 ? addSubscriptions(client, granted) : Promise.resolve()
  }

  // Which client ids have a persistent session stored, subscriptions or not: Aedes would say
  // "session present" only for one with subscriptions (MQTT-3.2.2-2 counts an empty one too). The
  // patched handlers/connect.js asks here (patches/aedes+1.2.0.patch).
  const sessions = persistence?.storedSessions() ?? new Set<string>()
  ;(store as unknown as { hasSession(clientId: string): boolean }).hasSession = (clientId) => sessions.has(clientId)
  const recordSession = (client: Client) => {
    // After the CONNACK's flag was decided: a persistent CONNECT stores its session from now on,
    // a clean one discards what was stored (MQTT-3.1.2-6).
    const stored = !client.clean
    if (sessions.has(client.id) === stored) return
    if (stored) sessions.add(client.id)
    else sessions.delete(client.id)
    persistence?.setStoredSession(client.id, stored).catch((err: Error) => log.error({ code: 'BROKER_PERSISTENCE_FAILED', err: err.message }, 'stored session not recorded'))
  }

  aedes.on('client', (client) => {
    const state = states.get(client)
    if (!state) return
    // The session is this identity's from now on. Claimed here, once the connection is up, not at
    // authentication: a CONNECT refused later (its Will) or dropped before it is registered must
    // not lock the real owner out. Two identities racing for one unclaimed id: the later goes.
    const owner = sessionOwner(state.identity)
    const recorded = owners.get(client.id)
    if (recorded !== undefined && recorded !== owner) {
      metrics.authFailures.inc({ reason: 'client_id_taken' })
      client.close()
      return
    }
    if (recorded === undefined) {
      owners.set(client.id, owner)
      persistence?.setSessionOwner(client.id, owner).catch((err: Error) => log.error({ code: 'BROKER_PERSISTENCE_FAILED', err: err.message }, 'session owner not stored'))
    }
    recordSession(client)
    if (!client.clean) void dropRefusedFilters(client, state.identity)
    metrics.connected.inc({ listener: state.listener })
    if (state.identity.deviceId !== undefined) options.presence?.online(state.identity, client)
  })
  /**
   * A resumed session may hold filters its owner may not have (stored before refused filters were
   * kept out of sessions, or by a version with other rules). Aedes refuses them again on resume
   * but keeps them stored, and they go on queueing what they match; they are removed here.
   */
  async function dropRefusedFilters(client: Client, identity: Identity): Promise<void> {
    const store = (aedes as unknown as { persistence: { subscriptionsByClient(c: Client): Promise<{ topic: string }[] | null>; removeSubscriptions(c: Client, topics: string[]): Promise<void> } }).persistence
    try {
      const refused = ((await store.subscriptionsByClient(client)) ?? []).map((s) => s.topic).filter((t) => !isWellFormed(t) || !maySubscribe(identity, t, settings.allowAnonymous))
      if (refused.length === 0) return
      await store.removeSubscriptions(client, refused)
      log.warn({ code: 'BROKER_SESSION_FILTERS_DROPPED', clientId: client.id, device: identity.deviceId, topics: refused }, 'stored filters this client may not have were removed from its session')
    } catch (err) {
      log.error({ code: 'BROKER_PERSISTENCE_FAILED', clientId: client.id, err: (err as Error).message }, 'could not check a resumed session\'s filters')
    }
  }

  aedes.on('clientDisconnect', (client) => {
    const state = states.get(client)
    if (!state) return
    metrics.connected.dec({ listener: state.listener })
    // Aedes sets _disconnected only for a DISCONNECT packet, the one ending after which no Will fires.
    const graceful = (client as Client & { _disconnected?: boolean })._disconnected === true
    if (state.identity.deviceId !== undefined) options.presence?.offline(state.identity, client, graceful)
    // A clean session ends with its connection, and with it the claim on its client id (unless a
    // connection of the same owner took it over and is still there).
    const live = (aedes as unknown as { clients: Record<string, Client | undefined> }).clients[client.id]
    if (client.clean && (live === undefined || live === client) && owners.delete(client.id)) {
      persistence?.setSessionOwner(client.id, undefined).catch((err: Error) => log.error({ code: 'BROKER_PERSISTENCE_FAILED', err: err.message }, 'session owner not removed'))
    }
  })
  aedes.on('clientError', (client, err) => {
    // Deliveries still queued for a client whose connection ended fail with 'connection closed'.
    if (err.message === 'connection closed') metrics.dropped.inc({ reason: 'client_gone' })
    log.debug({ clientId: client.id, err: err.message }, 'client error')
  })
  aedes.on('keepaliveTimeout', (client) => {
    const state = states.get(client)
    metrics.disconnects.inc({ reason: 'keepalive_timeout' })
    log.info({ code: 'BROKER_KEEPALIVE_TIMEOUT', clientId: client.id, device: state?.identity.deviceId }, 'client silent past 1.5× its keepalive; disconnected')
  })
  aedes.on('connectionError', (client, err) => {
    log.debug({ clientId: client.id, err: err.message }, 'connection error')
  })

  listeners = await startListeners(settings, aedes.handle, metrics, log)

  // Wills of clients that were connected when a previous run of this broker ended: their
  // connections ended without a DISCONNECT, so their Wills are due, unless the client reconnects
  // within the grace period (its CONNECT then replaces or removes the Will). Aedes's own sweep
  // would find them only every 4 heartbeats (4 min by default).
  const restoredWills = persistence
    ? setTimeout(() => {
        publishRestoredWills().catch((err: Error) => log.error({ code: 'BROKER_WILL_FAILED', err: err.message }, 'restored Wills not published'))
      }, limits.restoredWillGraceMs)
    : undefined
  restoredWills?.unref()
  async function publishRestoredWills(): Promise<void> {
    type Will = PublishPacket & { clientId: string; brokerId: string }
    const store = (
      aedes as unknown as {
        persistence: {
          streamWill(brokers: Record<string, number>): AsyncIterable<Will>
          getWill(client: { id: string }): Promise<Will | undefined>
          delWill(client: { id: string; brokerId: string }): Promise<unknown>
        }
      }
    ).persistence
    const live = (aedes as unknown as { clients: Record<string, Client | undefined> }).clients
    for await (const will of store.streamWill({ [aedes.id]: Date.now() })) {
      if (!will.brokerId.endsWith(PREVIOUS_RUN) || live[will.clientId] !== undefined || aedes.closed) continue
      const allowed = await new Promise<boolean>((resolve) => aedesOptions.authorizePublish!(null, will, (err) => resolve(!err)))
      // Asked again after the wait: a client that reconnected meanwhile is online, and its CONNECT
      // replaced (or removed) this Will; neither may be undone now.
      const current = await store.getWill({ id: will.clientId })
      if (live[will.clientId] !== undefined || current?.brokerId !== will.brokerId) continue
      if (allowed) await new Promise<void>((resolve) => aedes.publish(will, () => resolve()))
      await store.delWill({ id: will.clientId, brokerId: will.brokerId })
      log.info({ code: 'BROKER_WILL_RESTORED', clientId: will.clientId, topic: will.topic, published: allowed }, 'Will of a client connected when the broker last stopped')
    }
  }

  return {
    aedes,
    ports: listeners.ports,
    tcpPort: listeners.ports.tcp,
    identityOf: (client) => states.get(client)?.identity,
    async close() {
      clearTimeout(restoredWills)
      const closing = listeners.close()
      await new Promise<void>((resolve) => aedes.close(() => resolve()))
      await closing
      // Aedes 1.x does not destroy its persistence on close.
      await persistence?.destroy()
    },
  }
}

/**
 * Runs `proceed` now, or once the client's rate and the broker's routing queue allow. Aedes hands
 * over every packet of one socket read at once, so held packets wait in a per-client FIFO (MQTT
 * keeps a client's messages in order, §4.6) released by one timer. While any wait, Aedes does
 * not read that client's socket again (see the header): a flood becomes TCP back-pressure.
 */
function pace(state: ClientState, aedes: Aedes, maxInFlightRouted: number, metrics: BrokerMetrics, proceed: () => void): void {
  if (state.held.length === 0 && routable(aedes, maxInFlightRouted) && state.rate.take()) return proceed()
  state.held.push(proceed)
  if (!state.releaseTimer) scheduleRelease(state, aedes, maxInFlightRouted, metrics)
}

function scheduleRelease(state: ClientState, aedes: Aedes, maxInFlightRouted: number, metrics: BrokerMetrics): void {
  const routing = !routable(aedes, maxInFlightRouted)
  metrics.backpressure.inc({ reason: routing ? 'routing' : 'client_rate' })
  const delay = routing ? 2 : Math.max(1, state.rate.waitMs())
  state.releaseTimer = setTimeout(() => {
    state.releaseTimer = undefined
    while (state.held.length > 0 && routable(aedes, maxInFlightRouted) && state.rate.take()) state.held.shift()!()
    if (state.held.length > 0) scheduleRelease(state, aedes, maxInFlightRouted, metrics)
  }, delay)
}

/** Whether Aedes's router has room: its queue beyond `concurrency` is below the cap. */
function routable(aedes: Aedes, maxInFlightRouted: number): boolean {
  return (aedes as unknown as { mq: { length: number } }).mq.length <= maxInFlightRouted
}

function willOwner(topic: string): Identity | undefined {
  const parts = topic.split('/')
  return parts[0] === 'dev' && parts.length >= 3 ? { deviceId: parts[1] } : undefined
}
