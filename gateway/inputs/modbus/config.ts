/** Config of the modbus input (`inputs.modbus` in the office config). Placeholder until the input lands. */
import Type, { type Static } from 'typebox'

export const ModbusInputsConfig = Type.Array(Type.Object({}, { additionalProperties: false }))
export type ModbusInputsConfig = Static<typeof ModbusInputsConfig>
export const modbusDefaults: ModbusInputsConfig = []
