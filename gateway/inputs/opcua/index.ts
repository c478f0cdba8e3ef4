/** Builds the opcua inputs the office config asks for. Placeholder until the input lands. */
import type { Input, InputContext } from '../input.ts'

export function createOpcuaInputs(_ctx: InputContext): Input[] {
  return []
}
