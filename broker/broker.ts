/**
 * The street-office MQTT broker: Aedes with GridWatch's identity, ACL and ingest hooks.
 *
 * The ingest hook runs inside `authorizePublish`, which Aedes awaits before it writes the PUBACK
 * (lib/handlers/publish.js: authorizePublish → enqueuePublish → PubAck). Aedes's own `published`
 * hook runs only after the PUBACK has gone out, so it cannot carry a durability promise. Hence:
 * when the broker runs inside the gateway, a device's PUBACK means its message is committed to the
 * gateway's outbox.
 */
import { createServer, type Server } from 'node:net'
import type { AddressInfo } from 'node:net'
import { Aedes, type AuthenticateError, type Client, type PublishPacket } from 'aedes'
import { Counter, Gauge, type Registry } from 'prom-client'
import { silentLogger, type Logger } from '../common/logger.ts'
import { mayPublish, maySubscribe, type Identity } from './acl.ts'
import type { DeviceRegistry } from './registry.ts'

/** CONNACK return codes, MQTT 3.1.1 §3.2.2.3. */
const SERVER_UNAVAILABLE = 3
const BAD_USERNAME_OR_PASSWORD = 4
const NOT_AUTHORIZED = 5

/**
 * Called for every authorised publish before the broker acknowledges it. Call back with no error
 * to acknowledge; with an error to refuse (the client is disconnected without a PUBACK and will
 * resend). A callback, not a promise: it runs once per message.
 */
export type IngestHook = (identity: Identity, packet: PublishPacket, client: Client | null, done: (err: Error | null) => void) => void

export interface BrokerOptions {
  registry: DeviceRegistry
  allowAnonymous: boolean
  tcp: { host: string; port: number } | null
  ingest?: IngestHook
  logger?: Logger
  metrics?: Registry
}

export interface RunningBroker {
  aedes: Aedes
  /** Bound TCP port (useful with port 0), or undefined when TCP is off. */
  tcpPort: number | undefined
  /** Identity of a connected client, for presence and commands. */
  identityOf(client: Client): Identity | undefined
  close(): Promise<void>
}

export async function startBroker(options: BrokerOptions): Promise<RunningBroker> {
  const log = options.logger ?? silentLogger()
  const registers = options.metrics ? [options.metrics] : []
  const authFailures = new Counter({
    name: 'broker_auth_failures_total',
    help: 'CONNECTs refused, by reason',
    labelNames: ['reason'],
    registers,
  })
  const aclDenied = new Counter({
    name: 'broker_acl_denied_total',
    help: 'Publishes, wills and subscriptions refused by the topic ACL',
    labelNames: ['action'],
    registers,
  })
  const connected = new Gauge({ name: 'broker_clients_connected', help: 'Connected MQTT clients', registers })

  const identities = new WeakMap<Client, Identity>()
  if (options.allowAnonymous) {
    log.warn(
      { code: 'BROKER_ANONYMOUS' },
      'allowAnonymous is on: any client may connect and publish anywhere. For lab and interop use only.',
    )
  }

  const refuse = (returnCode: AuthenticateError['returnCode'], message: string): AuthenticateError =>
    Object.assign(new Error(message), { returnCode })

  const aedes = new Aedes({
    // Aedes's default of 23 is MQTT 3.1's limit; 3.1.1 lets servers accept longer ids (§3.1.3.1).
    maxClientsIdLength: 128,
    authenticate(client, username, password, done) {
      const fail = (reason: string, code: number) => {
        authFailures.inc({ reason })
        log.warn({ code: 'BROKER_AUTH_REFUSED', reason, clientId: client.id, username, remote: remoteOf(client) }, 'connection refused')
        done(refuse(code, reason), false)
      }
      if (username === undefined && password === undefined && options.allowAnonymous) {
        identities.set(client, { deviceId: undefined })
        return done(null, true)
      }
      options.registry.authenticate(username, password).then(
        (result) => {
          if (!result.ok) return fail(result.reason, BAD_USERNAME_OR_PASSWORD)
          const identity: Identity = { deviceId: result.deviceId }
          // A Will is a deferred publish: refuse the CONNECT now rather than let it fire into
          // someone else's topic later.
          // Aedes keeps the CONNECT's will on `_will` until the session is set up (handlers/connect.js).
          const will = (client as Client & { _will?: PublishPacket })._will
          if (will && !mayPublish(identity, will.topic, options.allowAnonymous)) {
            aclDenied.inc({ action: 'will' })
            return fail('will_topic_denied', NOT_AUTHORIZED)
          }
          identities.set(client, identity)
          done(null, true)
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
      const identity = client ? identities.get(client) : willOwner(packet.topic)
      if (!identity || !mayPublish(identity, packet.topic, options.allowAnonymous)) {
        aclDenied.inc({ action: 'publish' })
        log.warn({ code: 'BROKER_PUBLISH_DENIED', clientId: client?.id, device: identity?.deviceId, topic: packet.topic }, 'publish denied')
        return done(new Error('publish not authorized'))
      }
      if (!options.ingest) return done(null)
      options.ingest(identity, packet, client, done)
    },
    authorizeSubscribe(client, subscription, done) {
      const identity = identities.get(client)
      if (!identity || !maySubscribe(identity, subscription.topic, options.allowAnonymous)) {
        aclDenied.inc({ action: 'subscribe' })
        log.warn({ code: 'BROKER_SUBSCRIBE_DENIED', clientId: client.id, device: identity?.deviceId, topic: subscription.topic }, 'subscribe denied')
        // A null subscription makes Aedes answer SUBACK 0x80 (failure) for this filter, §3.9.3.
        return done(null, null)
      }
      done(null, subscription)
    },
  })
  await aedes.listen()

  aedes.on('client', () => connected.inc())
  aedes.on('clientDisconnect', () => connected.dec())
  aedes.on('clientError', (client, err) => {
    log.debug({ clientId: client.id, err: err.message }, 'client error')
  })
  aedes.on('connectionError', (client, err) => {
    log.debug({ clientId: client.id, err: err.message }, 'connection error')
  })

  let server: Server | undefined
  let tcpPort: number | undefined
  if (options.tcp) {
    const srv = createServer(aedes.handle)
    server = srv
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject)
      srv.listen(options.tcp!.port, options.tcp!.host, () => {
        srv.off('error', reject)
        resolve()
      })
    })
    tcpPort = (srv.address() as AddressInfo).port
    log.info({ host: options.tcp.host, port: tcpPort }, 'MQTT listening on TCP')
  }

  return {
    aedes,
    tcpPort,
    identityOf: (client) => identities.get(client),
    async close() {
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
      await new Promise<void>((resolve) => aedes.close(() => resolve()))
    },
  }
}

function willOwner(topic: string): Identity | undefined {
  const parts = topic.split('/')
  return parts[0] === 'dev' && parts.length >= 3 ? { deviceId: parts[1] } : undefined
}

function remoteOf(client: Client): string | undefined {
  const conn = client.conn as { remoteAddress?: string }
  return conn.remoteAddress
}
