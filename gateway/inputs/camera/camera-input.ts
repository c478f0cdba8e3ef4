/**
 * The camera HTTP input: cameras push ISAPI `EventNotificationAlert`s here (XML alone, or
 * multipart/form-data with the XML part and a JPEG snapshot), as a Hikvision camera does to its
 * "alarm host" / HTTP listening server. The camera is answered 200 only after the event is
 * committed to the outbox; a camera retries anything else, so a failed commit answers 503.
 *
 * Order of work per request: authenticate (before the body is read), read the body within its
 * limits, parse and map the XML, keep the snapshot, hand the event to the pipeline, answer.
 */
import { readFileSync } from 'node:fs'
import {
  getMultipartBoundary,
  MaxFileSizeExceededError,
  MaxPartsExceededError,
  MaxTotalSizeExceededError,
  MultipartParseError,
  MultipartParser,
  type MultipartPart,
} from '@remix-run/multipart-parser/node'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { Counter, Gauge } from 'prom-client'
import { LogLimiter } from '../../../common/log-limiter.ts'
import type { DeviceCamera } from '../../../contracts/device-messages.ts'
import type { Outcome } from '../../pipeline.ts'
import { InputMetrics, type Input, type InputContext, type InputHealth } from '../input.ts'
import { CameraAuthenticator, normaliseAddress, type AuthResult } from './auth.ts'
import type { CameraSettings } from './config.ts'
import { MAX_XML_BYTES, parseEventNotification, toCameraMessage } from './isapi.ts'
import { responseStatus } from './response.ts'
import { SnapshotStore, type DropReason } from './snapshots.ts'

declare module 'fastify' {
  interface FastifyRequest {
    camera: string
  }
}

/** What came in one request's body. */
export interface Pushed {
  /** The EventNotificationAlert, XML or JSON. */
  document?: Buffer
  jpeg?: Buffer
  /** The image part was larger than a snapshot may be; its bytes were not kept. */
  jpegTooLarge?: number
  /** Parts past the limit were left unread: the connection must end with the answer. */
  partsLeftUnread?: true
}

class BadRequest extends Error {
  constructor(
    readonly reason: 'bad_xml' | 'bad_multipart' | 'oversized' | 'unsupported_type',
    message: string,
  ) {
    super(message)
  }
}

export class CameraInput implements Input {
  readonly name = 'camera'
  private app: FastifyInstance | undefined
  private readonly input: InputMetrics
  private readonly auth: CameraAuthenticator
  private readonly snapshots: SnapshotStore
  private readonly warnLimiter = new LogLimiter()
  private readonly snapshotsDropped: Counter<'camera' | 'reason'>
  private readonly snapshotsKept: Counter<'camera'>
  private readonly snapshotBytes: Gauge
  private readonly heartbeats: Counter<'camera'>

  constructor(
    private readonly ctx: InputContext,
    private readonly settings: CameraSettings,
  ) {
    this.input = new InputMetrics(ctx.metrics, this.name)
    this.auth = new CameraAuthenticator(ctx.config.devices, { ...settings.auth, pins: settings.pins, digestHa1: settings.digestHa1 })
    this.snapshots = new SnapshotStore(ctx.dataDir, settings.snapshots)
    const registers = [ctx.registry]
    this.snapshotsDropped = new Counter({
      name: 'gateway_camera_snapshots_dropped_total',
      help: 'Camera snapshots not kept (the event was kept without one), by camera and reason (too_large, not_jpeg, over_quota, write_failed)',
      labelNames: ['camera', 'reason'],
      registers,
    })
    this.snapshotsKept = new Counter({ name: 'gateway_camera_snapshots_total', help: 'Camera snapshots kept on disk, by camera', labelNames: ['camera'], registers })
    this.snapshotBytes = new Gauge({
      name: 'gateway_camera_snapshot_bytes',
      help: 'Bytes of camera snapshots kept on disk',
      registers,
      collect: () => this.snapshotBytes.set(this.snapshots.usedBytes),
    })
    this.heartbeats = new Counter({
      name: 'gateway_camera_heartbeats_total',
      help: 'ISAPI notifications with eventState inactive (heartbeats, event ends): acknowledged, not stored',
      labelNames: ['camera'],
      registers,
    })
  }

  /** The bound port (the config may ask for 0). */
  get port(): number | undefined {
    const address = this.app?.server.address()
    return address && typeof address === 'object' ? address.port : undefined
  }

  get snapshotDir(): string {
    return this.snapshots.dir
  }

  /**
   * A reloaded office config (SIGHUP, gateway.reload): cameras added, removed or given new secrets
   * log in accordingly. The same authenticator takes the new list, so hold-offs, remembered
   * logins of unchanged cameras and Digest nonces outlive a reload (a new one would reset them all).
   */
  replaceDevices(devices: InputContext['config']['devices']): void {
    this.auth.replaceDevices(devices)
  }

  health(): InputHealth {
    const port = this.port
    return port !== undefined ? { ok: true, detail: `listening on ${this.settings.host}:${port}${this.settings.tls ? ' (TLS)' : ''}` } : { ok: false, detail: 'not listening' }
  }

  async start(): Promise<void> {
    this.snapshots.load()
    const app = this.build()
    await app.listen({ host: this.settings.host, port: this.settings.port })
    this.app = app
    this.ctx.logger.info({ port: this.port, path: this.settings.path, tls: this.settings.tls !== null }, 'camera input listening')
  }

  async stop(): Promise<void> {
    const app = this.app
    this.app = undefined
    await app?.close()
  }

  private build(): FastifyInstance {
    const { tls, maxBodyBytes } = this.settings
    const app = Fastify({
      logger: false,
      bodyLimit: maxBodyBytes,
      // A camera's push is one short request; a connection that dribbles is not a camera.
      requestTimeout: 30_000,
      connectionTimeout: 30_000,
      ...(tls ? { https: { cert: readFileSync(tls.cert), key: readFileSync(tls.key) } } : {}),
    }) as unknown as FastifyInstance
    app.decorateRequest('camera', '')
    // Only what a camera sends: Fastify's built-in JSON and text parsers would let other bodies in.
    app.removeAllContentTypeParsers()
    // The same EventNotificationAlert as XML or, from newer firmware, as JSON (isapi.ts reads both).
    app.addContentTypeParser(['application/xml', 'text/xml', 'application/json'], { parseAs: 'buffer', bodyLimit: MAX_XML_BYTES }, (_req, body, done) => done(null, body))
    // multipart/* is read in the handler (readMultipart), from the request stream: not here, and
    // not with busboy (@fastify/multipart), which skips a part without Content-Disposition, the
    // shape of Hikvision's own density-event guide, and reads only multipart/form-data, not the
    // multipart/mixed of an event stream. Fastify's bodyLimit does not apply to an unread body;
    // readMultipart keeps maxBodyBytes itself.
    app.addContentTypeParser(/^multipart\//i, (_req, _payload, done) => done(null, undefined))
    // Before the body is read: an unauthenticated client never gets to upload megabytes.
    app.addHook('onRequest', async (req, reply) => {
      const result = await this.auth.authenticate(req.headers.authorization, req.socket.remoteAddress ?? 'unknown', req.method, req.url)
      if (result.ok) {
        req.camera = result.deviceId
        return
      }
      return this.refuse(req, reply, result)
    })
    app.post(this.settings.path, (req, reply) => this.handle(req, reply))
    app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
      const source = req.camera || 'unknown'
      const status = err.statusCode ?? 500
      if (status === 413) return this.bad(req, reply, source, new BadRequest('oversized', err.message), 413)
      if (status === 415) return this.bad(req, reply, source, new BadRequest('unsupported_type', 'unsupported Content-Type; send application/xml, text/xml, application/json or multipart/form-data'), 415)
      if (status >= 400 && status < 500) return this.bad(req, reply, source, new BadRequest('bad_multipart', err.message), status)
      this.ctx.logger.error({ err, camera: source }, 'camera input request failed')
      return reply.code(500).type('application/xml').send(responseStatus(req.url, 3, 'Device Error', 'internalError'))
    })
    return app
  }

  private refuse(req: FastifyRequest, reply: FastifyReply, result: Extract<AuthResult, { ok: false }>): FastifyReply {
    // A label per claimed user name would let anyone grow the metric without bound.
    const source = result.deviceId ?? 'unknown'
    // A stale Digest nonce is the routine second step of a Digest login, not a failed one.
    this.input.rejected(source, result.status === 429 ? 'rate_limited' : result.reason === 'stale_nonce' ? 'stale_nonce' : 'auth_failed')
    const address = normaliseAddress(req.socket.remoteAddress ?? 'unknown')
    const held = result.reason === 'stale_nonce' ? -1 : this.warnLimiter.take(`auth:${address}:${result.reason}`)
    if (held >= 0) {
      this.ctx.logger.warn({ code: 'GW_CAMERA_AUTH_FAILED', address, camera: result.deviceId, reason: result.reason, heldBack: held }, 'camera push refused')
    }
    if (result.status === 401) reply.header('www-authenticate', this.auth.challenges(result.reason === 'stale_nonce'))
    // To keep the connection, Node reads and discards the rest of a refused body, however large.
    // A body over maxBodyBytes (more than any accepted push may be) ends the connection instead.
    // Not every refused upload: closing with unread data makes the kernel reset the connection,
    // which can destroy the 401 before the client reads it, and a Digest camera's first, refused
    // request carries its whole push, picture included. A chunked body is still read to its end
    // or to the 30 s request timeout.
    const length = Number(req.headers['content-length'] ?? 0)
    if (length > this.settings.maxBodyBytes) reply.header('connection', 'close')
    if (result.retryAfterSeconds !== undefined) reply.header('retry-after', String(result.retryAfterSeconds))
    return reply.code(result.status).type('application/xml').send(responseStatus(req.url, 4, 'Invalid Operation', result.reason))
  }

  private async handle(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const camera = req.camera
    const receivedAt = Date.now()
    this.input.frame(camera)
    let pushed: Pushed
    try {
      pushed = isMultipart(req) ? await readMultipart(req, this.settings.snapshots.maxBytes, this.settings.maxBodyBytes) : { document: req.body as Buffer }
    } catch (err) {
      // Reading may have stopped mid-body: the rest of it must not be taken for the next request
      // on this connection, nor read on the client's behalf. The connection ends with the answer.
      if (isMultipart(req)) reply.header('connection', 'close')
      if (err instanceof BadRequest) return this.bad(req, reply, camera, err, err.reason === 'oversized' ? 413 : 400)
      const e = err as Error & { statusCode?: number }
      if (e.statusCode === 413) return this.bad(req, reply, camera, new BadRequest('oversized', e.message), 413)
      return this.bad(req, reply, camera, new BadRequest('bad_multipart', `multipart body could not be read: ${e.message}`))
    }
    if (pushed.partsLeftUnread) reply.header('connection', 'close')
    if (!pushed.document || pushed.document.length === 0) {
      const missing = isMultipart(req) ? new BadRequest('bad_multipart', 'no EventNotificationAlert XML or JSON part') : new BadRequest('bad_xml', 'empty body')
      return this.bad(req, reply, camera, missing)
    }
    const parsed = parseEventNotification(pushed.document)
    if (!parsed.ok) return this.bad(req, reply, camera, new BadRequest('bad_xml', parsed.message))
    const mapped = toCameraMessage(parsed.alert, {
      defaultConfidence: this.settings.defaultConfidence,
      eventTypes: this.settings.eventTypes,
      utcOffsetMinutes: this.ctx.config.office.utcOffsetMinutes,
    })
    if (mapped.heartbeat) {
      this.heartbeats.inc({ camera })
      return ok(reply, req.url)
    }
    const message = mapped.message
    const snapshot = await this.keepSnapshot(camera, pushed, receivedAt)
    if (snapshot) message.snapshot = snapshot

    const outcome = await this.commit(camera, message, receivedAt)
    if ('err' in outcome) {
      if (snapshot) await this.snapshots.remove(snapshot)
      this.ctx.logger.error({ code: 'GW_OUTBOX_COMMIT_FAILED', camera, err: outcome.err.message }, 'camera event not committed; the camera will retry')
      return reply.code(503).header('retry-after', '5').type('application/xml').send(responseStatus(req.url, 2, 'Device Busy', 'commitFailed'))
    }
    if (!outcome.ok) {
      // Never acceptable (the pipeline counted and logged why): a resend cannot fix it, so 400.
      if (snapshot) await this.snapshots.remove(snapshot)
      return reply.code(400).type('application/xml').send(responseStatus(req.url, 6, 'Invalid Content', outcome.rejection.code, outcome.rejection.message))
    }
    return ok(reply, req.url)
  }

  private commit(camera: string, message: DeviceCamera, receivedAt: number): Promise<Outcome | { err: Error }> {
    return this.ctx.pipeline
      .acceptAsync({ input: this.name, deviceId: camera, kind: 'camera', raw: Buffer.from(JSON.stringify(message)), receivedAt })
      .catch((err: Error) => ({ err }))
  }

  private async keepSnapshot(camera: string, pushed: Pushed, receivedAt: number): Promise<string | undefined> {
    let drop: { reason: DropReason; message: string } | undefined
    if (pushed.jpegTooLarge !== undefined) {
      drop = { reason: 'too_large', message: `snapshot is ${pushed.jpegTooLarge}+ bytes; the limit is ${this.settings.snapshots.maxBytes}` }
    } else if (pushed.jpeg) {
      const saved = await this.snapshots.save(camera, pushed.jpeg, receivedAt)
      if (saved.ok) {
        this.snapshotsKept.inc({ camera })
        return saved.ref
      }
      drop = saved
    }
    if (drop) {
      this.snapshotsDropped.inc({ camera, reason: drop.reason })
      const held = this.warnLimiter.take(`snapshot:${camera}:${drop.reason}`)
      if (held >= 0) this.ctx.logger.warn({ code: 'GW_CAMERA_SNAPSHOT_DROPPED', camera, reason: drop.reason, heldBack: held }, drop.message)
    }
    return undefined
  }

  private bad(req: FastifyRequest, reply: FastifyReply, source: string, err: BadRequest, status = 400): FastifyReply {
    this.input.rejected(source, err.reason)
    const held = this.warnLimiter.take(`bad:${source}:${err.reason}`)
    if (held >= 0) this.ctx.logger.warn({ code: 'GW_CAMERA_EVENT_INVALID', camera: source, reason: err.reason, heldBack: held }, err.message)
    return reply.code(status).type('application/xml').send(responseStatus(req.url, 5, 'Invalid XML Format', err.reason, err.message))
  }
}

function ok(reply: FastifyReply, url: string): FastifyReply {
  return reply.code(200).type('application/xml').send(responseStatus(url, 1, 'OK', 'ok'))
}

/** Parts read from one push: ANPR and traffic cameras send the XML and several pictures. */
const MAX_PARTS = 16
/** A part's header block; Hikvision's are three or four short lines. */
const MAX_PART_HEADER_BYTES = 8 * 1024
/** Boundaries and part headers, on top of maxBodyBytes of part content. */
const FRAMING_BYTES = 64 * 1024
/** Bytes before the first boundary (an RFC 2046 preamble, or a stray CRLF) looked through. */
const MAX_PREAMBLE_BYTES = 1024

function isMultipart(req: FastifyRequest): boolean {
  return /^multipart\//i.test(req.headers['content-type'] ?? '')
}

/** A part's type and names; a header that is not UTF-8 (a GBK file name, say) leaves them unknown. */
function describePart(part: MultipartPart): { type: string; name?: string; filename?: string } {
  try {
    return { type: part.mediaType ?? '', name: part.name, filename: part.filename }
  } catch {
    return { type: '' }
  }
}

/** Whether the parser has read the close delimiter (finish() throws until it has). */
function finished(parser: MultipartParser): boolean {
  try {
    parser.finish()
    return true
  } catch {
    return false
  }
}

/**
 * Hikvision sends the XML as a part named after the event ("fielddetection", or
 * "MoveDetection.xml" with a filename) and the picture as an image/jpeg part; which is which is
 * told by the part's Content-Type, then its file name, then its first bytes. Parts need no
 * Content-Disposition (Hikvision's density-event guide sends none), and any multipart/* subtype
 * is read.
 *
 * @remix-run/multipart-parser reads the parts, whatever their disposition (busboy, before it,
 * skipped a part without one). It holds a part in memory until the part ends, so its limits keep
 * a push within maxBodyBytes of content while it is read: one limit for every part and for the
 * body as a whole, plus a cap on part headers. Chunks go to the parser as they come off the
 * socket, without a copy. Around it, what RFC 2046 lets a sender add and the parser refuses: a
 * preamble before the first boundary, and an epilogue after the last that arrives in a later
 * chunk (a final CRLF in a TCP segment of its own, say), which is read and dropped.
 */
export async function readMultipart(req: Pick<FastifyRequest, 'headers' | 'raw'>, maxSnapshotBytes: number, maxBodyBytes: number): Promise<Pushed> {
  // RFC 2046 §5.1.1: a boundary never ends in a space, so one before a following parameter's ';' is not part of it.
  const boundary = getMultipartBoundary(req.headers['content-type'] ?? '')?.trimEnd()
  if (!boundary) throw new BadRequest('bad_multipart', 'multipart Content-Type without a boundary')
  const tooLarge = () => new BadRequest('oversized', `multipart body is larger than ${maxBodyBytes} bytes`)
  // Refused before a byte is read when the camera says how much is coming.
  if (Number(req.headers['content-length'] ?? 0) > maxBodyBytes + FRAMING_BYTES) throw tooLarge()
  const parser = new MultipartParser(boundary, { maxParts: MAX_PARTS, maxFileSize: maxBodyBytes, maxTotalSize: maxBodyBytes, maxHeaderSize: MAX_PART_HEADER_BYTES })
  const opening = Buffer.from(`--${boundary}`)
  const pushed: Pushed = {}
  let preamble: Buffer | undefined = Buffer.alloc(0)
  let ended = false
  let bytesRead = 0
  let index = 0
  const take = (part: MultipartPart) => {
    const { type, name, filename } = describePart(part)
    const label = name ?? filename ?? `#${index}`
    index++
    const declaredDocument = /xml|json/i.test(type) || /\.(xml|json)$/i.test(filename ?? '')
    // A picture sent as application/octet-stream, or with no type at all, shows by its first bytes.
    const head = Buffer.concat(part.content.slice(0, 4)).subarray(0, 8)
    const isImage = /^image\//i.test(type) || /\.(jpe?g|png|bmp)$/i.test(filename ?? '') || (!declaredDocument && isPicture(head))
    if (isImage) {
      if (pushed.jpeg || pushed.jpegTooLarge !== undefined) return // one snapshot per event; extra pictures are ignored
      if (part.size > maxSnapshotBytes) pushed.jpegTooLarge = part.size
      else pushed.jpeg = Buffer.concat(part.content)
      return
    }
    if (part.size > MAX_XML_BYTES) {
      if (declaredDocument) throw new BadRequest('oversized', `event part "${label}" is larger than ${MAX_XML_BYTES} bytes`)
      return // a large part of another kind (a clip, say) is not the event
    }
    const value = Buffer.concat(part.content)
    if (!pushed.document && looksLikeDocument(type, filename ?? name ?? '', value)) pushed.document = value
  }
  try {
    for await (const chunk of req.raw as AsyncIterable<Buffer>) {
      bytesRead += chunk.length
      if (bytesRead > maxBodyBytes + FRAMING_BYTES) throw tooLarge()
      if (ended) continue
      let data = chunk
      if (preamble) {
        const seen = Buffer.concat([preamble, chunk])
        const at = seen.indexOf(opening)
        if (at < 0) {
          if (seen.length > MAX_PREAMBLE_BYTES + opening.length) throw new BadRequest('bad_multipart', `no "--${boundary}" boundary at the start of the body`)
          preamble = seen
          continue
        }
        data = seen.subarray(at)
        preamble = undefined
      }
      try {
        for (const part of parser.write(data)) take(part)
      } catch (err) {
        // A parser past its close delimiter refuses any later chunk: that chunk is the epilogue.
        if (!(err instanceof MultipartParseError) || !finished(parser)) throw err
        ended = true
      }
    }
    if (!finished(parser)) throw new BadRequest('bad_multipart', preamble ? `no "--${boundary}" boundary in the body` : 'multipart body ends before its closing boundary')
  } catch (err) {
    // More parts than the limit (traffic cameras that send every picture): an event already read
    // is kept, and the parts after the limit are not read.
    if (err instanceof MaxPartsExceededError && pushed.document) return { ...pushed, partsLeftUnread: true }
    if (err instanceof MaxTotalSizeExceededError || err instanceof MaxFileSizeExceededError) throw tooLarge()
    if (err instanceof MaxPartsExceededError) throw new BadRequest('oversized', `more than ${MAX_PARTS} parts before the event`)
    if (err instanceof MultipartParseError) throw new BadRequest('bad_multipart', err.message)
    throw err
  }
  return pushed
}

function isPicture(head: Buffer): boolean {
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return true
  return head.length >= 4 && head[0] === 0x89 && head.toString('latin1', 1, 4) === 'PNG'
}

/** The event document: declared XML or JSON, or starting like one. */
function looksLikeDocument(mimetype: string, name: string, value: Buffer): boolean {
  if (/xml|json/i.test(mimetype) || /\.(xml|json)$/i.test(name)) return true
  const first = value.subarray(0, 64).toString('utf8').replace(/^\uFEFF/, '').trimStart()
  return first.startsWith('<') || first.startsWith('{')
}
