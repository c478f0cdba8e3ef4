/**
 * What the gateway does with one checksummed sentence from a serial line: check it names a reader
 * or wand wired to this line, turn it into a scan for the pipeline, and answer the device — GWACK
 * only after the pipeline's callback, which comes after the outbox commit, so a wand deletes a
 * stored scan only once it is on disk; GWNAK for a frame that can never be accepted; nothing when
 * the commit failed, so the device sends the frame again.
 */
import { fnv1a } from '../../../common/fnv1a.ts'
import type { DeviceScan } from '../../../contracts/device-messages.ts'
import { parse, type Sentence } from '../../../contracts/serial-sentences.ts'
import type { DeviceConfig } from '../../config/schema.ts'
import type { GatewayErrorCode } from '../../errors.ts'
import type { Pipeline } from '../../pipeline.ts'
import type { InputMetrics } from '../input.ts'

export interface SentenceSink {
  /** Queue a reply sentence for the device. */
  reply(s: Sentence): void
  /** A frame refused before the pipeline: for the log (rate-limited by the caller). */
  refused(code: GatewayErrorCode, reason: string, message: string, device?: string): void
  /** The outbox could not commit: the device is not answered and will resend. */
  commitFailed(device: string, err: Error): void
}

/** Which sentence each device type may send. */
const sentenceOf: Partial<Record<DeviceConfig['type'], string>> = { 'checkpoint-reader': 'GWSCN', 'patrol-wand': 'GWWSC' }

export class SentenceIngest {
  constructor(
    private readonly line: string,
    /** The devices wired to this line with `via: serial`, and only those. */
    private readonly devices: ReadonlyMap<string, DeviceConfig>,
    private readonly pipeline: Pipeline,
    private readonly metrics: InputMetrics,
    private readonly sink: SentenceSink,
  ) {}

  /** `body` is the text between `$` and `*`, checksum already verified. `done` once answered (or not). */
  ingest(body: string, receivedAt: number, done: () => void = noop): void {
    const parsed = parse(body)
    if (!parsed.ok) {
      this.refuse('GW_SERIAL_FRAME_INVALID', parsed.reason, parsed.message, parsed.device, parsed.seq)
      return done()
    }
    const s = parsed.sentence
    if (s.type === 'GWACK' || s.type === 'GWNAK') {
      // The gateway's own replies echoed back: a miswired line (TX looped to RX) or a second gateway.
      this.refuse('GW_SERIAL_FRAME_INVALID', 'unexpected_sentence', `${s.type} is sent by the gateway, not to it`, s.device)
      return done()
    }
    const device = this.devices.get(s.device)
    if (!device) {
      this.refuse('GW_DEVICE_UNKNOWN', 'device_not_on_line', `device "${s.device}" is not a serial device on line "${this.line}"`, s.device)
      return done()
    }
    if (sentenceOf[device.type] !== s.type) {
      this.refuse('GW_SERIAL_FRAME_INVALID', 'wrong_sentence', `a ${device.type} does not send ${s.type}`, s.device, s.seq)
      return done()
    }
    const scan: DeviceScan =
      s.type === 'GWSCN'
        ? { ...(s.time !== undefined ? { ts: s.time } : {}), tag: s.tag, method: 'reader' }
        : { ts: s.time, tag: s.tag, ...(s.staff !== undefined ? { staff: s.staff } : {}), method: 'wand' }
    const raw = Buffer.from(JSON.stringify(scan))
    // The device's frame number with a fingerprint of the frame: a frame resent because its GWACK
    // was lost (the wand was pulled from the dock) is recognised by the outbox and not stored twice.
    const transmission = { client: `serial:${s.device}`, packet: s.seq, hash: fnv1a(body) }
    this.pipeline.accept({ input: 'serial', deviceId: s.device, kind: 'scan', raw, receivedAt, transmission }, (err, rejection) => {
      if (err) this.sink.commitFailed(s.device, err)
      else if (rejection) this.sink.reply({ type: 'GWNAK', device: s.device, seq: s.seq, code: rejection.code })
      // A double scan or an unknown tag is still acknowledged: resending cannot change its fate.
      else this.sink.reply({ type: 'GWACK', device: s.device, seq: s.seq })
      done()
    })
  }

  private refuse(code: GatewayErrorCode, reason: string, message: string, device?: string, seq?: number): void {
    this.metrics.rejected(this.line, reason)
    this.sink.refused(code, reason, message, device)
    // Only a device of this line is answered: a NAK carries its id, and the line is its bus.
    if (device !== undefined && seq !== undefined && this.devices.has(device)) this.sink.reply({ type: 'GWNAK', device, seq, code })
  }
}

function noop(): void {}
