/**
 * The broker's listeners: MQTT over TCP, over TLS (optionally mutual), and over WebSocket for
 * phone and browser patrol apps. Each one can be turned off (null in config).
 *
 * Every connection passes the same gate before Aedes sees a byte: a total connection cap and a
 * connect-rate limit per IP address on the raw socket as it is accepted (before any TLS
 * handshake or WebSocket upgrade), then a packet size guard on the byte stream. The gate also
 * counts bytes per listener and remembers, per connection, which listener it came through and
 * which device names its client certificate carries.
 */
import { readFileSync } from 'node:fs'
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { createServer as createTlsServer, type TLSSocket } from 'node:tls'
import { WebSocketServer, createWebSocketStream } from 'ws'
import { LogLimiter } from '../common/log-limiter.ts'
import type { Logger } from '../common/logger.ts'
import type { BrokerSettings } from './config.ts'
import { KeyedRateLimit, PacketSizeGuard } from './limits.ts'
import type { BrokerMetrics, ListenerName } from './metrics.ts'

export interface ConnectionInfo {
  listener: ListenerName
  remote: string | undefined
  /**
   * Names from a client certificate the TLS handshake verified against the configured CA: the
   * subject CN and every DNS/URI/email SAN. Empty without one.
   */
  certificateNames: string[]
}

export interface Listeners {
  ports: Partial<Record<ListenerName, number>>
  /** What the gate knows about a connection Aedes hands back as `client.conn`. */
  info(conn: unknown): ConnectionInfo | undefined
  close(): Promise<void>
}

type Handle = (stream: Duplex, req?: IncomingMessage) => void

export async function startListeners(settings: BrokerSettings, handle: Handle, metrics: BrokerMetrics, log: Logger): Promise<Listeners> {
  const infos = new WeakMap<object, ConnectionInfo>()
  const connectRate = new KeyedRateLimit(settings.limits.connectsPerSecondPerAddress, Math.max(5, settings.limits.connectsPerSecondPerAddress))
  const closers: (() => Promise<void>)[] = []
  const ports: Partial<Record<ListenerName, number>> = {}
  const sockets = new Set<Socket>()
  const warnings = new LogLimiter()

  const refuser = (listener: ListenerName, stream: Duplex, remote: string | undefined) => (reason: string) => {
    metrics.connectionsRefused.inc({ listener, reason })
    // A connect storm is thousands of these a second: one line per address and reason per 10 s,
    // with the count held back; the metric counts every one.
    const heldBack = warnings.take(`${listener}:${reason}:${remote}`)
    if (heldBack >= 0) log.warn({ code: 'BROKER_CONNECTION_REFUSED', listener, remote, reason, heldBack }, 'connection refused')
    stream.destroy()
  }

  /**
   * The first gate, on the raw socket as it is accepted: before a TLS handshake or a WebSocket
   * upgrade costs anything, and counting sockets still in one, so that connections which never
   * finish them cannot hold descriptors past the cap. False: refused and destroyed.
   */
  const gated = new WeakSet<Socket>()
  const gate = (listener: ListenerName, socket: Socket): boolean => {
    const refuse = refuser(listener, socket, socket.remoteAddress)
    const reason = sockets.size >= settings.limits.maxConnections ? 'max_connections' : socket.remoteAddress !== undefined && !connectRate.take(socket.remoteAddress) ? 'connect_rate' : undefined
    if (reason === undefined) return true
    // A TLS server reports the socket it wrapped as a failed handshake too; it is not one.
    gated.add(socket)
    refuse(reason)
    return false
  }

  /** Instruments a connection that passed the gate (and its handshake) and hands it to Aedes. */
  const admit = (listener: ListenerName, stream: Duplex, remote: string | undefined, certificateNames: string[], req?: IncomingMessage) => {
    const refuse = refuser(listener, stream, remote)
    metrics.connections.inc({ listener })
    instrument(stream, listener, settings.limits.maxPacketBytes, metrics, refuse)
    // Aedes destroys a subscriber's stream with 'drain timeout' when its socket stayed full for
    // drainTimeoutMs (lib/client.js); that error reaches only the stream, so it is counted here.
    stream.on('error', (err) => {
      if (err.message !== 'drain timeout') return
      metrics.disconnects.inc({ reason: 'slow_consumer' })
      log.warn({ code: 'BROKER_SLOW_CONSUMER', listener, remote, drainTimeoutMs: settings.limits.drainTimeoutMs }, 'slow consumer disconnected')
    })
    infos.set(stream, { listener, remote, certificateNames })
    handle(stream, req)
  }

  const listen = (server: NetServer | HttpServer, name: ListenerName, host: string, port: number) =>
    new Promise<void>((resolve, reject) => {
      // Raw sockets of every listener, so close() can end half-open handshakes and idle upgrades.
      server.on('connection', (socket: Socket) => {
        // Refused by the gate already (it runs first): not counted against the cap.
        if (socket.destroyed) return
        sockets.add(socket)
        socket.once('close', () => sockets.delete(socket))
      })
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        ports[name] = (server.address() as AddressInfo).port
        log.info({ listener: name, host, port: ports[name] }, 'MQTT listening')
        closers.push(() => new Promise<void>((done) => server.close(() => done())))
        resolve()
      })
    })

  if (settings.tcp) {
    const server = createNetServer((socket) => {
      if (gate('tcp', socket)) admit('tcp', socket, socket.remoteAddress, [])
    })
    await listen(server, 'tcp', settings.tcp.host, settings.tcp.port)
  }

  if (settings.tls) {
    const tls = settings.tls
    const mode = tls.clientCertificates
    const server = createTlsServer(
      {
        cert: readFileSync(tls.cert),
        key: readFileSync(tls.key),
        ...(tls.ca ? { ca: readFileSync(tls.ca) } : {}),
        requestCert: mode !== 'off',
        // In 'optional' mode an unverifiable certificate is not fatal: the device may still log in
        // with a password, and its certificate's names are simply not trusted.
        rejectUnauthorized: mode === 'required',
        // Node's default is 120 s: a socket that never completes its handshake goes as soon as one
        // that never sends CONNECT would.
        handshakeTimeout: settings.limits.connectTimeoutMs,
      },
      (socket) => admit('tls', socket, socket.remoteAddress, mode !== 'off' && socket.authorized ? certificateNames(socket) : []),
    )
    server.on('connection', (socket: Socket) => void gate('tls', socket))
    // Plain MQTT on the TLS port, an expired certificate, a wrong CA: all end here.
    server.on('tlsClientError', (err, socket) => {
      // The TLSSocket wraps the raw socket the gate saw (as _parent, in Node 20).
      const raw = (socket as unknown as { _parent?: Socket })._parent
      if (raw !== undefined && gated.has(raw)) return
      metrics.connectionsRefused.inc({ listener: 'tls', reason: 'tls_handshake' })
      const heldBack = warnings.take(`tls:tls_handshake:${socket.remoteAddress}`)
      if (heldBack >= 0) log.warn({ code: 'BROKER_TLS_REFUSED', listener: 'tls', remote: socket.remoteAddress, reason: err.message, heldBack }, 'TLS handshake failed')
    })
    await listen(server, 'tls', tls.host, tls.port)
  }

  if (settings.ws) {
    const ws = settings.ws
    // The upgrade request must arrive within connectTimeoutMs too (Node's defaults are a minute and more).
    const timeouts = { headersTimeout: settings.limits.connectTimeoutMs, requestTimeout: settings.limits.connectTimeoutMs }
    const http = ws.tls
      ? createHttpsServer({ cert: readFileSync(ws.tls.cert), key: readFileSync(ws.tls.key), handshakeTimeout: settings.limits.connectTimeoutMs, ...timeouts })
      : createHttpServer(timeouts)
    http.on('connection', (socket: Socket) => void gate('ws', socket))
    // One WebSocket message carries at least one MQTT packet; the packet guard does the real check.
    const wss = new WebSocketServer({
      server: http,
      path: ws.path,
      maxPayload: settings.limits.maxPacketBytes + 8,
      // The subprotocol answered is MQTT's own (MQTT-6.0.0-4): 'mqtt', or 'mqttv3.1' that MQTT 3.1
      // clients offer. An upgrade offering only others is refused with 400; one offering none is
      // let in, for simple tools that leave the header out.
      verifyClient: (info: { req: IncomingMessage }, answer: (ok: boolean, code?: number, message?: string) => void) => {
        const offered = info.req.headers['sec-websocket-protocol']
        if (offered === undefined || mqttSubprotocol(new Set(offered.split(',').map((p) => p.trim()))) !== false) return answer(true)
        metrics.connectionsRefused.inc({ listener: 'ws', reason: 'subprotocol' })
        const heldBack = warnings.take(`ws:subprotocol:${info.req.socket.remoteAddress}`)
        if (heldBack >= 0) log.warn({ code: 'BROKER_CONNECTION_REFUSED', listener: 'ws', remote: info.req.socket.remoteAddress, reason: 'subprotocol', offered, heldBack }, 'WebSocket upgrade refused: no MQTT subprotocol offered')
        answer(false, 400, 'MQTT subprotocol required')
      },
      handleProtocols: mqttSubprotocol,
    })
    wss.on('connection', (socket, req) => {
      const stream = createWebSocketStream(socket)
      // The stream sends every write as its own frame, and mqtt-packet writes a packet in pieces:
      // a CONNACK went out as four one-byte frames. Writes gathered while corked (see instrument)
      // leave as one binary frame instead.
      ;(stream as Duplex & { _writev?: unknown })._writev = (chunks: { chunk: Buffer }[], callback: (err?: Error | null) => void) =>
        stream._write(Buffer.concat(chunks.map((c) => c.chunk)), 'buffer' as BufferEncoding, callback)
      // MQTT travels in binary frames only; any other data frame closes the connection (MQTT-6.0.0-1).
      // Ahead of the stream's own listener, which then pushes into a destroyed stream: not a byte
      // of the frame reaches Aedes.
      const textFrame = (_data: unknown, isBinary: boolean) => {
        if (isBinary) return
        // Once per connection: frames already read may still arrive after terminate().
        socket.off('message', textFrame)
        metrics.disconnects.inc({ reason: 'protocol_violation' })
        const remote = req.socket.remoteAddress
        const heldBack = warnings.take(`protocol:websocket_text_frame:${remote}`)
        if (heldBack >= 0) log.warn({ code: 'BROKER_PROTOCOL_VIOLATION', reason: 'websocket_text_frame', listener: 'ws', remote, heldBack }, 'connection closed: MQTT sent in a WebSocket text frame')
        stream.destroy()
        socket.terminate()
      }
      socket.prependListener('message', textFrame)
      // A protocol error on the WebSocket (an oversized frame) is the client's problem, not ours.
      stream.on('error', () => {})
      admit('ws', stream, req.socket.remoteAddress, [], req)
    })
    await listen(http, 'ws', ws.host, ws.port)
    closers.push(
      () =>
        new Promise<void>((resolve) => {
          for (const client of wss.clients) client.terminate()
          wss.close(() => resolve())
        }),
    )
  }

  return {
    ports,
    info: (conn) => (conn && typeof conn === 'object' ? infos.get(conn) : undefined),
    async close() {
      const closed = Promise.all(closers.map((c) => c()))
      for (const socket of sockets) socket.destroy()
      await closed
    },
  }
}

/**
 * Counts bytes per listener and runs the packet size guard on what Aedes reads. Aedes pulls with
 * `conn.read()` on 'readable' (lib/client.js), so wrapping `read` sees every byte exactly once.
 */
function instrument(stream: Duplex, listener: ListenerName, maxPacketBytes: number, metrics: BrokerMetrics, refuse: (reason: string) => void): void {
  const guard = new PacketSizeGuard(maxPacketBytes)
  const traffic = metrics.traffic[listener]
  const read = stream.read.bind(stream)
  stream.read = (size?: number) => {
    const chunk = read(size) as Buffer | null
    if (chunk) {
      traffic.bytesIn += chunk.length
      if (!guard.feed(chunk)) {
        refuse(guard.refusal ?? 'packet_too_large')
        return null
      }
    }
    return chunk
  }
  // Whatever Aedes writes to one client in one turn of the event loop leaves in one system call.
  // Aedes answers each packet in its own callback, so otherwise every PUBACK and every delivery
  // was its own writev: a quarter of the broker's CPU time under QoS 1 load went to those.
  // The socket is corked at the turn's first write and uncorked once the turn's I/O is done.
  let corked = false
  const uncork = () => {
    if (!corked) return
    corked = false
    stream.uncork()
  }
  // destroy() drops what is still corked: a refusal written just before it (a CONNACK with a
  // return code, then the close) must still leave.
  const destroy = stream.destroy.bind(stream)
  stream.destroy = (...args: Parameters<typeof stream.destroy>) => {
    uncork()
    return destroy(...args)
  }
  const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    traffic.bytesOut += typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as Buffer).length
    if (!corked) {
      corked = true
      stream.cork()
      setImmediate(uncork)
    }
    return write(chunk, ...rest)
  }) as typeof stream.write
}

/** The MQTT WebSocket subprotocol to answer among those offered, or false for none of them. */
function mqttSubprotocol(offered: Set<string>): string | false {
  return offered.has('mqtt') ? 'mqtt' : offered.has('mqttv3.1') ? 'mqttv3.1' : false
}

function certificateNames(socket: TLSSocket): string[] {
  const cert = socket.getPeerCertificate()
  if (!cert || Object.keys(cert).length === 0) return []
  const names: string[] = []
  const cn = cert.subject?.CN
  if (typeof cn === 'string') names.push(cn)
  else if (Array.isArray(cn)) names.push(...(cn))
  for (const entry of (cert.subjectaltname ?? '').split(',')) {
    const match = /^\s*(DNS|URI|email):(.+)$/.exec(entry)
    if (match) names.push(match[2].trim())
  }
  return names
}
