/**
 * Builds the serial inputs the office config asks for: one per line in `inputs.serial`, each
 * named `serial:<line id>` so /healthz and /readyz tell the lines apart. The line format is
 * docs/inputs/serial.md.
 */
import { InputMetrics, type Input, type InputContext } from '../input.ts'
import { resolveLine } from './config.ts'
import { SerialLineInput } from './line-input.ts'
import { createSerialMetrics } from './metrics.ts'

export function createSerialInputs(ctx: InputContext): Input[] {
  const lines = ctx.config.inputs.serial
  if (lines.length === 0) return []
  // The config, references to /devices included, was checked when it loaded (load.ts).
  const metrics = new InputMetrics(ctx.metrics, 'serial')
  const own = createSerialMetrics(ctx.registry)
  const byId = new Map(ctx.config.devices.map((d) => [d.id, d]))
  return lines.map((line) => {
    const resolved = resolveLine(line)
    const devices = new Map(resolved.devices.map((id) => [id, byId.get(id)!]))
    return new SerialLineInput(resolved, { pipeline: ctx.pipeline, logger: ctx.logger, metrics, own, devices })
  })
}
