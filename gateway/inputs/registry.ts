/**
 * Every field input besides MQTT, built from the office config's `inputs` section. Each kind lives
 * in its own folder behind the same Input interface; the gateway starts and stops them together.
 *
 * An input's module is imported only when the office configures that input: node-opcua alone
 * adds tens of MB to a process, and most offices have no OPC UA server to read. (Each folder's
 * config.ts, which the config schema imports, stays free of its protocol library for that reason.)
 */
import type { Input, InputContext } from './input.ts'

export async function createFieldInputs(ctx: InputContext): Promise<Input[]> {
  const forInput = (input: string): InputContext => ({ ...ctx, logger: ctx.logger.child({ component: 'input', input }) })
  const { serial, modbus, opcua, camera } = ctx.config.inputs
  const inputs: Input[] = []
  if (serial.length > 0) inputs.push(...(await import('./serial/index.ts')).createSerialInputs(forInput('serial')))
  if (modbus.length > 0) inputs.push(...(await import('./modbus/index.ts')).createModbusInputs(forInput('modbus')))
  if (opcua.length > 0) inputs.push(...(await import('./opcua/index.ts')).createOpcuaInputs(forInput('opcua')))
  if (camera !== null) inputs.push(...(await import('./camera/index.ts')).createCameraInputs(forInput('camera')))
  return inputs
}
