/**
 * Every field input besides MQTT, built from the office config's `inputs` section. Each kind lives
 * in its own folder behind the same Input interface; the gateway starts and stops them together.
 */
import { createCameraInputs } from './camera/index.ts'
import type { Input, InputContext } from './input.ts'
import { createModbusInputs } from './modbus/index.ts'
import { createOpcuaInputs } from './opcua/index.ts'
import { createSerialInputs } from './serial/index.ts'

export function createFieldInputs(ctx: Omit<InputContext, 'logger'> & { logger: InputContext['logger'] }): Input[] {
  const forInput = (input: string): InputContext => ({ ...ctx, logger: ctx.logger.child({ component: 'input', input }) })
  return [
    ...createSerialInputs(forInput('serial')),
    ...createModbusInputs(forInput('modbus')),
    ...createOpcuaInputs(forInput('opcua')),
    ...createCameraInputs(forInput('camera')),
  ]
}
