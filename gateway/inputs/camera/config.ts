/** Config of the camera HTTP input (`inputs.camera` in the office config). Placeholder until the input lands. */
import Type, { type Static } from 'typebox'

export const CameraInputConfig = Type.Union([Type.Object({}, { additionalProperties: false }), Type.Null()])
export type CameraInputConfig = Static<typeof CameraInputConfig>
export const cameraDefaults: CameraInputConfig = null
