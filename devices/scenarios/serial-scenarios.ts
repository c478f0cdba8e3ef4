/**
 * Scripted situations on a serial line (docs/inputs/serial.md): a patrol wand docked after a
 * night's rounds, and a line full of noise. They need a gateway with a serial line whose devices
 * include `wand-01` (via: serial) and the far end of that line: a real port, or the device end of
 * a socat pty pair (`socat pty,raw,echo=0,link=/tmp/gw pty,raw,echo=0,link=/tmp/dev`).
 */
import { ROUND_TAGS, type RunningScenario, type Scenario, type ScenarioContext } from './mqtt-scenarios.ts'
import { seeded } from '../serial/noise.ts'
import { SerialEnd } from '../serial/serial-end.ts'
import { PatrolWand, dockUpload } from '../serial/wand-dock.ts'

export const WAND_ID = 'wand-01'

/** `rounds` walks of the demo round, one every 10 minutes of last night, a scan every 2 minutes. */
export function nightOfRounds(wand: PatrolWand, scans: number, endedAt = Date.now() - 3_600_000): void {
  const start = endedAt - scans * 120_000
  for (let i = 0; i < scans; i++) wand.store(ROUND_TAGS[i % ROUND_TAGS.length], start + i * 120_000)
}

async function upload(ctx: ScenarioContext, scans: number, noisy: boolean): Promise<RunningScenario> {
  if (!ctx.serialPath) throw new Error('this scenario needs --serial <path>: the device end of the gateway serial line')
  const end = await SerialEnd.open(ctx.serialPath, { baudRate: ctx.baudRate ?? 115_200 })
  const wand = new PatrolWand(WAND_ID, 'staff-zhang-wei')
  nightOfRounds(wand, scans)
  ctx.say(`${WAND_ID} docked with ${wand.records.size} stored scans${noisy ? ', on a noisy line' : ''}`)
  const random = seeded(7)
  const done = dockUpload(end, wand, noisy ? { noise: { random, gapBytes: 40, corruptOneIn: 5 }, timeoutMs: 500, maxAttempts: 10 } : {}).then((r) => {
    ctx.say(`${r.acked} acknowledged (deleted from the wand), ${r.naked.length} refused, ${r.resent} sent again, ${r.left} left on the wand, in ${r.seconds.toFixed(1)} s`)
  })
  return { done, stop: () => end.close() }
}

export const serialScenarios: Scenario[] = [
  {
    name: 'wand-upload',
    expect: `${WAND_ID} uploads 500 scans stored over last night; each is acknowledged only once committed and keeps its own scan time (needs --serial)`,
    run: (ctx) => upload(ctx, 500, false),
  },
  {
    name: 'serial-noise',
    expect: `${WAND_ID} uploads 100 scans through garbage between frames and one frame in five corrupted: the bad ones are refused on checksum, sent again, and all 100 arrive once (needs --serial)`,
    run: (ctx) => upload(ctx, 100, true),
  },
]
