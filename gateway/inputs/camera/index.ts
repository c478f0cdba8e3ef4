/**
 * The camera HTTP input (ISAPI event push), built from `inputs.camera` in the office config:
 * one listener for every camera device with `via: http`. docs/inputs/camera.md describes it.
 */
import type { Input, InputContext } from '../input.ts'
import { CameraInput } from './camera-input.ts'
import { resolveCameraSettings } from './config.ts'

export { CameraInput } from './camera-input.ts'

export function createCameraInputs(ctx: InputContext): Input[] {
  const config = ctx.config.inputs.camera
  if (!config) return []
  const settings = resolveCameraSettings(config)
  // The pins were checked against /devices when the config loaded (load.ts).
  if (!ctx.config.devices.some((d) => d.via === 'http')) ctx.logger.warn('camera input is on, but no device has via: http; every push will be refused')
  return [new CameraInput(ctx, settings)]
}
