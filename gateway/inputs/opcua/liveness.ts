/**
 * Liveness of one subscription, seen from the client: a server sends a Publish response at least
 * every MaxKeepAliveCount publishing intervals, a keep-alive when nothing changed (OPC UA Part 4,
 * 5.13.1.1). Silence for twice that says the subscription is dead even though the channel is up.
 *
 * Why the link needs it: node-opcua 2.182.2 emits `session_closed` only for the client's own
 * CloseSession. A server that drops the session (BadSessionClosed, BadSessionIdInvalid on a
 * Publish) without cutting TCP only makes the client's publish engine stop sending Publish
 * requests (client_publish_engine.js, `active = false`): no event, no reconnection, no data,
 * while the link would still look up.
 */

/** Twice the keep-alive period (a late keep-alive is not a dead server) plus this, for latency. */
export const LIVENESS_MARGIN_MS = 2000

/** How long a subscription may stay silent: 2 × MaxKeepAliveCount × revised publishing interval + margin. */
export function silenceLimitMs(revisedPublishingIntervalMs: number, revisedMaxKeepAliveCount: number): number {
  return 2 * Math.max(1, revisedMaxKeepAliveCount) * Math.max(1, revisedPublishingIntervalMs) + LIVENESS_MARGIN_MS
}

/** Calls `onSilent` once when `feed()` was not called for `limitMs` after `arm()`. */
export class LivenessWatchdog {
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly onSilent: (silentMs: number) => void) {}

  get armed(): boolean {
    return this.timer !== undefined
  }

  arm(limitMs: number): void {
    this.disarm()
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.onSilent(limitMs)
    }, limitMs)
    // A watchdog must not keep the gateway's process alive on its own.
    this.timer.unref()
  }

  /** A keep-alive or a notification arrived. refresh(): one call per Publish response, no allocation. */
  feed(): void {
    this.timer?.refresh()
  }

  disarm(): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }
}
