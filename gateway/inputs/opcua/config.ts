/** Config of the opcua input (`inputs.opcua` in the office config). Placeholder until the input lands. */
import Type, { type Static } from 'typebox'

export const OpcuaInputsConfig = Type.Array(Type.Object({}, { additionalProperties: false }))
export type OpcuaInputsConfig = Static<typeof OpcuaInputsConfig>
export const opcuaDefaults: OpcuaInputsConfig = []
