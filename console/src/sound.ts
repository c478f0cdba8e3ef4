/**
 * The critical-alert beep (WebAudio). Browsers let audio start only after a user gesture: the
 * sign-in click unlocks it, and so does any later click or key press.
 */
import { createStore } from './store.ts'

const MUTE_KEY = 'gridwatch.console.muted'

function initialMuted(): boolean {
  try {
    return localStorage.getItem(MUTE_KEY) === '1'
  } catch {
    return false
  }
}

export const muted = createStore<boolean>(initialMuted())
muted.subscribe((m) => {
  try {
    localStorage.setItem(MUTE_KEY, m ? '1' : '0')
  } catch {
    // not remembered
  }
})
/** How many beeps have sounded (or would have, when muted they are not counted). */
export const beeps = createStore(0)

let ctx: AudioContext | undefined
let lastBeep = 0

export function unlockAudio(): void {
  try {
    ctx ??= new AudioContext()
    if (ctx.state === 'suspended') void ctx.resume().catch(() => undefined)
  } catch {
    // no WebAudio: the visual alarm remains
  }
}

for (const type of ['pointerdown', 'keydown'] as const) {
  window.addEventListener(type, unlockAudio, { capture: true, passive: true })
}

/** Two short tones; at most one alarm per two seconds however many alerts arrive at once. */
export function beep(): void {
  if (muted.get()) return
  const now = Date.now()
  if (now - lastBeep < 2000) return
  lastBeep = now
  beeps.update((n) => n + 1)
  if (!ctx || ctx.state !== 'running') return
  const start = ctx.currentTime
  for (const [offset, freq] of [
    [0, 880],
    [0.28, 660],
  ] as const) {
    const osc = ctx.createOscillator()
    const gain = ctx.createGain()
    osc.type = 'sine'
    osc.frequency.value = freq
    gain.gain.setValueAtTime(0.0001, start + offset)
    gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02)
    gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.22)
    osc.connect(gain).connect(ctx.destination)
    osc.start(start + offset)
    osc.stop(start + offset + 0.25)
  }
}
