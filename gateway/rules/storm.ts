/**
 * Storm guard: a device raising alerts faster than `maxAlerts` per `windowSeconds` is a storm (a
 * camera seeing "intrusions" in every shadow, a sensor with a failing contact). The raises beyond
 * the budget are held back, and the center gets one `storm` alert instead: raised at the first
 * held-back alert, updated with the count at the end of each stormy window, cleared after a quiet
 * window. Updates and clears of alerts already out are never held back.
 */
import type { Rule, RuleOutput, RaiseGate } from './rule.ts'
import { ownState } from './rule.ts'

interface DeviceWindow {
  /** Start of the current budget window (gateway clock). */
  since: number
  raised: number
  /** The storm alert, while one is open. */
  stormId?: string
  /** Held back in the current window, and since the storm began. */
  heldNow: number
  heldTotal: number
}

const PREFIX = 'storm'

export class StormGuard implements Rule, RaiseGate {
  readonly name = 'storm'
  private windows = new Map<string, DeviceWindow>()

  constructor(private readonly settings: { maxAlerts: number; windowSeconds: number }) {}

  restore(state: ReadonlyMap<string, string>): void {
    this.windows = new Map([...ownState<DeviceWindow>(state, PREFIX)].map(([k, v]) => [k.slice(PREFIX.length + 1), v]))
  }

  allow(device: string, out: RuleOutput): boolean {
    const w = this.current(device, out.now)
    if (w.raised < this.settings.maxAlerts) {
      w.raised++
      this.save(out, device, w)
      return true
    }
    w.heldNow++
    w.heldTotal++
    out.suppress('storm')
    if (!w.stormId) {
      w.stormId = out.raiseUngated(
        {
          type: 'storm',
          severity: 'major',
          message: `alert storm from ${device}: more than ${this.settings.maxAlerts} alerts in ${this.settings.windowSeconds} s; further alerts held back`,
          suppressed: w.heldTotal,
        },
        { device, ts: out.now },
      )
    }
    this.save(out, device, w)
    return false
  }

  /** Closes windows: reports what a stormy window held back, and clears a storm after a quiet one. */
  tick(out: RuleOutput): void {
    for (const [device, w] of this.windows) {
      if (out.now - w.since < this.settings.windowSeconds * 1000) continue
      if (w.stormId && w.heldNow > 0) {
        out.follow(w.stormId, 'updated', { type: 'storm', severity: 'major', message: `alert storm from ${device}: ${w.heldTotal} alerts held back so far`, suppressed: w.heldTotal }, { device, ts: out.now })
        Object.assign(w, { since: out.now, raised: 0, heldNow: 0 })
        this.save(out, device, w)
      } else if (w.stormId) {
        out.follow(w.stormId, 'cleared', { type: 'storm', severity: 'major', message: `alert storm from ${device} is over: ${w.heldTotal} alerts were held back`, suppressed: w.heldTotal }, { device, ts: out.now })
        this.windows.delete(device)
        out.put(`${PREFIX}:${device}`, null)
      } else {
        this.windows.delete(device)
        out.put(`${PREFIX}:${device}`, null)
      }
    }
  }

  private current(device: string, now: number): DeviceWindow {
    let w = this.windows.get(device)
    if (!w) {
      w = { since: now, raised: 0, heldNow: 0, heldTotal: 0 }
      this.windows.set(device, w)
    } else if (now - w.since >= this.settings.windowSeconds * 1000 && !w.stormId) {
      // A quiet device's window simply rolls over; a stormy one is rolled by tick(), which reports it.
      Object.assign(w, { since: now, raised: 0, heldNow: 0 })
    }
    return w
  }

  private save(out: RuleOutput, device: string, w: DeviceWindow): void {
    out.put(`${PREFIX}:${device}`, w)
  }
}
