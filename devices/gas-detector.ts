/**
 * A combustible-gas detector reporting %LEL. Its profile is a list of segments (hold, ramp),
 * so scenarios can script a leak: baseline noise, a rise through the low (25) and high (50)
 * alarm levels, a peak, and a fall back below the clear level.
 */
import type { MqttDevice } from './mqtt-device.ts'

export type GasSegment = { hold: number; seconds: number } | { from: number; to: number; seconds: number }

/** The leak the demo shows: about 10 s from first rise to all-clear. */
export const demoLeak: GasSegment[] = [
  { hold: 4, seconds: 1 },
  { from: 4, to: 58, seconds: 5 },
  { from: 58, to: 8, seconds: 4 },
  { hold: 4, seconds: Infinity },
]

export const steadyBackground: GasSegment[] = [{ hold: 3, seconds: Infinity }]

export class GasDetector {
  private timer: NodeJS.Timeout | undefined
  private started = 0

  constructor(
    private readonly device: MqttDevice,
    private readonly profile: GasSegment[],
    private readonly intervalMs = 500,
    /** Sensor noise, ± %LEL. */
    private readonly noise = 0.6,
  ) {}

  /** The reading the profile gives `elapsedMs` after start, noise included, never below 0. */
  valueAt(elapsedMs: number): number {
    let t = elapsedMs / 1000
    for (const seg of this.profile) {
      if (t <= seg.seconds) {
        const base = 'hold' in seg ? seg.hold : seg.from + ((seg.to - seg.from) * t) / seg.seconds
        const jitter = 'hold' in seg ? (Math.random() * 2 - 1) * this.noise : 0
        return Math.max(0, Math.round((base + jitter) * 10) / 10)
      }
      t -= seg.seconds
    }
    return 0
  }

  start(onError: (err: Error) => void = () => {}): void {
    this.started = Date.now()
    const tick = () => {
      const now = Date.now()
      this.device.publish('reading', { ts: now, quantity: 'gas', value: this.valueAt(now - this.started), unit: '%LEL' }).catch(onError)
    }
    tick()
    this.timer = setInterval(tick, this.intervalMs)
  }

  stop(): void {
    clearInterval(this.timer)
  }
}
