/**
 * In-process fan-out of what was just stored, for the live stream. Only envelopes stored for the
 * first time are published, so a gateway's replay does not re-announce old alerts.
 */
import { EventEmitter } from 'node:events'
import type { Envelope } from '../../contracts/envelope.ts'

export class LiveBus {
  private readonly emitter = new EventEmitter()

  constructor() {
    // One listener per open console; the default warning at 10 is not a leak here.
    this.emitter.setMaxListeners(0)
  }

  publish(envelopes: readonly Envelope[]): void {
    if (envelopes.length > 0) this.emitter.emit('stored', envelopes)
  }

  subscribe(listener: (envelopes: readonly Envelope[]) => void): () => void {
    this.emitter.on('stored', listener)
    return () => this.emitter.off('stored', listener)
  }
}
