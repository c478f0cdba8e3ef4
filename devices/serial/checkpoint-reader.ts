/**
 * A fixed checkpoint reader on a serial line: a patrol officer holds a tag to it, it sends a
 * GWSCN sentence and waits for the gateway's GWACK, sending the same frame again on silence (its
 * frame number lets the gateway recognise the repeat).
 */
import { encode, MAX_SEQ } from '../../contracts/serial-sentences.ts'
import { awaitReply } from './replies.ts'
import type { Reply, SerialEnd } from './serial-end.ts'

export class CheckpointReader {
  private seq = 0

  constructor(
    readonly end: SerialEnd,
    readonly id: string,
    private readonly options: { timeoutMs?: number; attempts?: number; clock?: boolean } = {},
  ) {}

  /** The sentence for the next scan, without sending it (tests split and merge these). */
  nextFrame(tag: string, time: number = Date.now()): { seq: number; frame: string } {
    this.seq = this.seq >= MAX_SEQ ? 1 : this.seq + 1
    // A reader without a real-time clock leaves the time empty; the gateway's receive time stands.
    const frame = encode({ type: 'GWSCN', device: this.id, seq: this.seq, tag, time: this.options.clock === false ? undefined : time })
    return { seq: this.seq, frame }
  }

  /** Sends a scan; resolves with the gateway's reply, or undefined when every attempt went unanswered. */
  async scan(tag: string, time: number = Date.now()): Promise<Reply | undefined> {
    const { seq, frame } = this.nextFrame(tag, time)
    for (let attempt = 0; attempt < (this.options.attempts ?? 3); attempt++) {
      const reply = awaitReply(this.end, this.id, seq, this.options.timeoutMs ?? 2000)
      await this.end.write(frame)
      const r = await reply
      if (r) return r
    }
    return undefined
  }
}
