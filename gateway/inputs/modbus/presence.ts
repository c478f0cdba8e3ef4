/**
 * A slave's presence as its device's status events: `online` on first answer, `offline` once
 * after N consecutive unanswered polls, `fault` while a fault bit is set, `online` when it clears
 * or the slave answers again. Each state is sent once; `committed()` moves it only after the
 * outbox took it, so a failed commit is retried on the next poll.
 */
import type { DeviceStatus } from '../../../contracts/device-messages.ts'

export type Presence = DeviceStatus['state']

export class SlavePresence {
  /** What the outbox last took for this device; undefined before the first poll. */
  reported: Presence | undefined
  failures = 0

  constructor(private readonly offlineAfter: number) {}

  get offline(): boolean {
    return this.reported === 'offline'
  }

  /** The slave answered every read of a poll; `faults` are the names of fault bits set. */
  answered(faults: readonly string[]): DeviceStatus | undefined {
    this.failures = 0
    if (faults.length > 0) {
      return this.reported === 'fault' ? undefined : { state: 'fault', reason: faults.join(', ') }
    }
    return this.reported === 'online' ? undefined : { state: 'online' }
  }

  /**
   * The slave answered, but a fault bit's register came back as an exception: the fault state
   * stays as it was, and a slave reported offline is online again (it answered).
   */
  answeredFaultsUnknown(): DeviceStatus | undefined {
    this.failures = 0
    return this.reported === 'offline' ? { state: 'online' } : undefined
  }

  /** A poll without a valid answer (timeout, CRC, bad frame). */
  unanswered(reason: string): DeviceStatus | undefined {
    this.failures++
    if (this.failures < this.offlineAfter || this.reported === 'offline') return undefined
    return { state: 'offline', reason: `no valid answer to ${this.failures} polls (last: ${reason})` }
  }

  committed(status: DeviceStatus): void {
    this.reported = status.state
  }
}
