/** Config of the serial input (`inputs.serial` in the office config). Placeholder until the input lands. */
import Type, { type Static } from 'typebox'

export const SerialInputsConfig = Type.Array(Type.Object({}, { additionalProperties: false }))
export type SerialInputsConfig = Static<typeof SerialInputsConfig>
export const serialDefaults: SerialInputsConfig = []
