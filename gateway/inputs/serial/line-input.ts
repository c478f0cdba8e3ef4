/**
 * One serial line: keeps its port open, cuts what arrives into sentences, hands them to
 * SentenceIngest, and writes the replies back. When the port goes away (a USB adapter unplugged,
 * a dock power-cycled), serialport closes it with a DisconnectedError (`err.disconnected`); the
 * line then retries with a bounded, jittered backoff until the device node is back, forever —
 * a dock may be replugged hours later — but never faster than `reconnectMinMs`.
 */
import { stat } from 'node:fs/promises'
import { SerialPort } from 'serialport'
import { LogLimiter } from '../../../common/log-limiter.ts'
import type { Logger } from '../../../common/logger.ts'
import { SentenceFramer, type FramingFault } from '../../../contracts/serial-framer.ts'
import { encode, type Sentence } from '../../../contracts/serial-sentences.ts'
import type { DeviceConfig } from '../../config/schema.ts'
import type { GatewayErrorCode } from '../../errors.ts'
import type { Pipeline } from '../../pipeline.ts'
import type { Input, InputHealth, InputMetrics } from '../input.ts'
import { PortBackoff } from '../port-backoff.ts'
import type { ResolvedLine } from './config.ts'
import { SentenceIngest } from './ingest.ts'
import type { SerialMetrics } from './metrics.ts'

const faultCode: Record<FramingFault, GatewayErrorCode> = {
  noise: 'GW_SERIAL_NOISE',
  bad_checksum: 'GW_SERIAL_BAD_CHECKSUM',
  // A sentence cut short by a new `$`, or ending without `*hh`, has no checksum that holds.
  truncated: 'GW_SERIAL_BAD_CHECKSUM',
  no_checksum: 'GW_SERIAL_BAD_CHECKSUM',
  oversized: 'GW_SERIAL_FRAME_TOO_LONG',
}

/** How long stop() waits for frames in the pipeline, so their ACKs still go out. */
const STOP_DRAIN_MS = 2000
/**
 * How often an open port's device node is checked. serialport notices an unplug only when a read
 * fails, and not every driver fails it (some USB adapters, a pty whose master went away while no
 * read was pending): the node gone, or a different device at the path, closes the port too.
 */
const WATCH_MS = 1000

export interface LineDeps {
  pipeline: Pipeline
  logger: Logger
  metrics: InputMetrics
  own: SerialMetrics
  /** The devices wired to this line (config checked: `via: serial`). */
  devices: ReadonlyMap<string, DeviceConfig>
}

export class SerialLineInput implements Input {
  readonly name: string
  private port: SerialPort | undefined
  private running = false
  private retry: NodeJS.Timeout | undefined
  private watch: NodeJS.Timeout | undefined
  private readonly backoff: PortBackoff
  private readonly framer: SentenceFramer
  private readonly ingest: SentenceIngest
  private readonly log: Logger
  private readonly limiter = new LogLimiter()
  /** Replies of one event-loop turn, written together: a group commit answers many frames at once. */
  private replies = ''
  private replyScheduled = false
  private inflight = 0
  private idle: (() => void) | undefined
  private lostAt: number | undefined
  /** Settles when the last reply handed to the port has left the stream for the device. */
  private lastWrite: Promise<void> = Promise.resolve()
  private readonly onData = (chunk: Buffer): void => this.framer.push(chunk)

  constructor(
    readonly line: ResolvedLine,
    private readonly deps: LineDeps,
  ) {
    this.name = `serial:${line.id}`
    this.log = deps.logger.child({ line: line.id, path: line.path })
    this.backoff = new PortBackoff(line.reconnectMinMs, line.reconnectMaxMs)
    this.ingest = new SentenceIngest(line.id, deps.devices, deps.pipeline, deps.metrics, {
      reply: (s) => this.reply(s),
      refused: (code, reason, message, device) => this.warn(code, reason, message, device === undefined ? {} : { device }),
      commitFailed: (device, err) => this.warn('GW_OUTBOX_COMMIT_FAILED', 'commit_failed', 'outbox commit failed; frame not acknowledged, the device resends', { device, err: err.message }),
    })
    this.framer = new SentenceFramer({
      sentence: (body) => this.sentence(body),
      fault: (fault, bytes) => {
        deps.metrics.rejected(line.id, fault)
        if (fault === 'noise') deps.own.noiseBytes.inc({ line: line.id }, bytes)
        this.warn(faultCode[fault], fault, `dropped ${bytes} bytes: ${fault.replace('_', ' ')}`, { bytes })
      },
    })
  }

  async start(): Promise<void> {
    this.running = true
    this.deps.metrics.connected(this.line.id, false)
    // A missing port does not stop the gateway: the line retries, and /readyz names it meanwhile.
    await this.open()
  }

  async stop(): Promise<void> {
    this.running = false
    clearTimeout(this.retry)
    clearInterval(this.watch)
    // Take no more sentences: one accepted during the waits below would be committed but its ACK
    // written after the port is gone (the device resends it anyway), and would keep the wait going.
    this.port?.off('data', this.onData)
    this.port?.pause()
    if (this.inflight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, STOP_DRAIN_MS)
        this.idle = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
    this.writeReplies()
    const port = this.port
    this.port = undefined
    if (port?.isOpen) {
      // Let the replies reach the wire before the descriptor goes, but not wait on a device that
      // stopped reading (tcdrain would block as long as it does). drain() only waits for what the
      // binding is writing, not for chunks still queued in the stream: the last write first.
      await within(STOP_DRAIN_MS, this.lastWrite)
      await within(STOP_DRAIN_MS, new Promise<void>((resolve) => port.drain(() => resolve())))
      await new Promise<void>((resolve) => port.close(() => resolve()))
    }
    this.deps.metrics.connected(this.line.id, false)
  }

  health(): InputHealth {
    if (this.port?.isOpen) return { ok: true }
    return { ok: false, detail: `${this.line.path} is not open${this.backoff.failures > 0 ? ` (${this.backoff.failures} attempts)` : ''}` }
  }

  private open(): Promise<void> {
    const { path, baudRate, parity, dataBits, stopBits } = this.line
    const port = new SerialPort({ path, baudRate, parity, dataBits, stopBits, autoOpen: false })
    return new Promise<void>((resolve) => {
      port.open((err) => {
        if (err) {
          this.lost(err.message)
          return resolve()
        }
        if (!this.running) {
          port.close(ignore)
          return resolve()
        }
        // The device node as opened, to notice it vanish or be replaced by another device.
        stat(path).then(
          (node) => {
            if (this.running) this.opened(port, node.rdev)
            else port.close(ignore)
            resolve()
          },
          (e: Error) => {
            port.close(ignore)
            this.lost(e.message)
            resolve()
          },
        )
      })
    })
  }

  private opened(port: SerialPort, rdev: number): void {
    this.port = port
    // The rest of a sentence cut by the unplug never comes; the next `$` starts afresh.
    this.framer.reset()
    port.on('data', this.onData)
    port.on('close', (err: (Error & { disconnected?: boolean }) | null) => {
      if (this.port !== port) return
      clearInterval(this.watch)
      this.port = undefined
      this.lost(err?.message ?? 'closed', true)
    })
    this.watch = setInterval(() => {
      stat(this.line.path).then(
        (node) => node.rdev !== rdev && this.vanished(port, 'another device is at the path now'),
        (e: Error) => this.vanished(port, e.message),
      )
    }, WATCH_MS)
    this.watch.unref()
    // A failed write also closes the port (serialport's _disconnected); 'close' handles that.
    port.on('error', (err: Error) => this.warn('GW_SERIAL_PORT_LOST', 'port_error', err.message, {}))
    this.deps.metrics.connected(this.line.id, true)
    if (this.lostAt !== undefined) {
      this.deps.metrics.reconnect(this.line.id)
      // An adapter that opens and fails at once comes back every few seconds: one line per interval.
      const held = this.limiter.take('reopened')
      if (held >= 0) this.log.info({ attempts: this.backoff.failures, downMs: Date.now() - this.lostAt, heldBack: held }, 'serial port reopened')
    } else {
      this.log.info({ baudRate: this.line.baudRate, parity: this.line.parity, dataBits: this.line.dataBits, stopBits: this.line.stopBits }, 'serial port open')
    }
    this.lostAt = undefined
    // Not a reset: an open that fails at once must keep backing off (PortBackoff.closed, .proven).
    this.backoff.opened()
  }

  private vanished(port: SerialPort, why: string): void {
    if (this.port !== port) return
    clearInterval(this.watch)
    this.port = undefined
    this.lost(`device node gone: ${why}`, true)
    // Close the stale descriptor; its own 'close' is ignored, this line has moved on.
    if (port.isOpen) port.close(ignore)
  }

  private lost(why: string, wasOpen = false): void {
    this.deps.metrics.connected(this.line.id, false)
    if (wasOpen) this.backoff.closed()
    if (!this.running) return
    // An open port going away and a closed one staying away are limited separately, so the loss
    // is logged even while a line that never opened fills its own quota with retries.
    this.lostAt ??= Date.now()
    const delay = this.backoff.next()
    const message = wasOpen ? `serial port lost: ${why}; retrying` : `serial port not open: ${why}; retrying`
    this.warn('GW_SERIAL_PORT_LOST', wasOpen ? 'port_lost' : 'port_retry', message, { attempt: this.backoff.failures, retryInMs: delay })
    this.retry = setTimeout(() => void this.open(), delay)
  }

  private sentence(body: string): void {
    // Every sentence whose checksum holds is a frame taken off the line, including those refused
    // for their fields or device afterwards (those are in gateway_input_rejected_total too).
    this.deps.metrics.frame(this.line.id)
    this.backoff.proven()
    this.inflight++
    let answered = false
    const done = () => {
      if (answered) return
      answered = true
      if (--this.inflight === 0 && this.idle) {
        this.idle()
        this.idle = undefined
      }
    }
    try {
      this.ingest.ingest(body, Date.now(), done)
    } catch (err) {
      // This runs inside the port's 'data' event: a throw here would take the gateway down.
      // Unanswered, the device resends; the count and the log say a frame hit a bug.
      this.deps.metrics.rejected(this.line.id, 'internal_error')
      this.log.error({ err, code: 'GW_SERIAL_FRAME_INVALID', reason: 'internal_error', frame: body.slice(0, 80) }, 'a serial frame could not be handled')
      done()
    }
  }

  private reply(s: Sentence): void {
    this.deps.own.replies.inc({ line: this.line.id, reply: s.type === 'GWACK' ? 'ack' : 'nak' })
    this.replies += encode(s)
    if (this.replyScheduled) return
    this.replyScheduled = true
    setImmediate(() => this.writeReplies())
  }

  private writeReplies(): void {
    this.replyScheduled = false
    const out = this.replies
    this.replies = ''
    // A reply due while the port is down is lost: the device resends, and the outbox knows the frame.
    const port = this.port
    if (out === '' || !port?.isOpen) return
    // Writes complete in order: the last one's callback means every reply before it left the stream.
    this.lastWrite = new Promise((resolve) => port.write(out, 'latin1', () => resolve()))
  }

  private warn(code: GatewayErrorCode, reason: string, message: string, fields: Record<string, unknown>): void {
    const held = this.limiter.take(reason)
    if (held < 0) return
    this.log.warn({ code, reason, heldBack: held, ...fields }, message)
  }
}

/** Waits for `p`, but not longer than `ms`. */
function within(ms: number, p: Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    void p.then(() => {
      clearTimeout(timer)
      resolve()
    })
  })
}

/** For a close whose outcome changes nothing (the line has already moved on); with no callback, serialport would emit an error. */
function ignore(): void {}
