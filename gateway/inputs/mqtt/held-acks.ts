/**
 * The PUBACKs the gateway owes the external office broker, held until each message is committed
 * to the outbox and then sent in the order the PUBLISHes came (MQTT-4.6.0-2).
 *
 * Why not simply answer MQTT.js's `handleMessage` after the commit: MQTT.js handles one incoming
 * packet at a time and reads the next only after `handleMessage` calls back, so every message
 * waited for a group commit of its own. Measured against Mosquitto on the 2-core machine, that
 * drained about 2,000 msgs/s, where the embedded broker commits 30,000: a burst beyond
 * Mosquitto's queue limit was dropped at the office broker. Here `handleMessage` calls back at
 * once (up to `maxInFlight` uncommitted messages, which is the back-pressure), MQTT.js goes on to
 * the next packet, and the PUBACK it tries to send is held here until the commit.
 *
 * A connection that closes takes its held PUBACKs with it: the broker resends those messages when
 * the session resumes, and the outbox recognises the ones that were committed meanwhile. An
 * acknowledgement is never sent on a later connection than its PUBLISH came on.
 */
export interface HeldAck {
  readonly messageId: number
  committed: boolean
  /** Sends the PUBACK, calling `written` once the socket took it; set when MQTT.js asks to send it. */
  send: ((written: () => void) => void) | undefined
  /** Left behind by a closed connection. */
  dropped: boolean
}

export class HeldAcks {
  /** In PUBLISH order. */
  private queue: HeldAck[] = []
  /** Messages read from the broker and still in flight (see `begin`). */
  private inFlight = 0
  /** Of those, PUBACKs handed to the socket and not yet taken by it. */
  private writing = 0
  /** Counts connections, so a write callback of a closed one changes nothing. */
  private connection = 0
  /**
   * MQTT.js's continuation to the next packet, waiting for room. One at most: MQTT.js hands over
   * no other packet until it runs.
   */
  private waiting: (() => void) | undefined

  constructor(private readonly maxInFlight: number) {}

  /** A QoS 1 PUBLISH arrived: its PUBACK waits for `committed()`. */
  hold(messageId: number): HeldAck {
    const ack: HeldAck = { messageId, committed: false, send: undefined, dropped: false }
    this.queue.push(ack)
    return ack
  }

  /**
   * MQTT.js wants to send a PUBACK: true if it is one of ours, to send once its message (and
   * every one before it) is committed; false means the PUBACK belongs to no held message (its
   * connection closed) and must not be sent at all.
   */
  claim(messageId: number, send: (written: () => void) => void): boolean {
    const ack = this.queue.find((a) => a.messageId === messageId && a.send === undefined)
    if (!ack) return false
    ack.send = send
    this.release()
    return true
  }

  committed(ack: HeldAck): void {
    if (ack.dropped) return
    ack.committed = true
    this.release()
  }

  /**
   * One more message in flight; `proceed` (MQTT.js's next packet) runs when there is room. A
   * message is in flight until its PUBACK is written to the socket (QoS 1), or until its commit
   * (QoS 0): counting only uncommitted messages let PUBACKs pile up unwritten behind a broker
   * that sends faster than it reads, tens of thousands of messages the broker still counts as
   * unacknowledged and would resend after a dropped connection.
   */
  begin(proceed: () => void): void {
    this.inFlight++
    if (this.inFlight <= this.maxInFlight) proceed()
    else this.waiting = proceed
  }

  /** A message left flight: its PUBACK is written, or (QoS 0) its commit finished, either way. */
  end(): void {
    this.inFlight--
    const proceed = this.waiting
    if (proceed && this.inFlight <= this.maxInFlight) {
      this.waiting = undefined
      proceed()
    }
  }

  /**
   * The connection closed: nothing held is ever sent, and what waited for room is abandoned with
   * it. Held messages leave the in-flight count (see `begin`): they are the broker's again.
   */
  reset(): void {
    const dropped = this.queue
    this.queue = []
    this.waiting = undefined
    for (const ack of dropped) {
      ack.dropped = true
      this.inFlight--
    }
    // PUBACKs handed to the closed socket: its 'drain' never comes. Their late callbacks are
    // told apart by the connection they belong to.
    this.inFlight -= this.writing
    this.writing = 0
    this.connection++
    this.notifyIdle()
  }

  get held(): number {
    return this.queue.length
  }

  /** Resolves once nothing is held (every PUBACK owed went out, or its connection closed). */
  idle(): Promise<void> {
    if (this.queue.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.onIdle.push(resolve))
  }

  private onIdle: (() => void)[] = []

  private release(): void {
    while (this.queue.length > 0 && this.queue[0].committed && this.queue[0].send) {
      const connection = this.connection
      this.writing++
      this.queue.shift()!.send!(() => {
        if (connection !== this.connection) return
        this.writing--
        this.end()
      })
    }
    this.notifyIdle()
  }

  private notifyIdle(): void {
    if (this.queue.length > 0 || this.onIdle.length === 0) return
    for (const resolve of this.onIdle.splice(0)) resolve()
  }
}
