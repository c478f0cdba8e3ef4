/** Every scripted scenario `npm run devices -- --scenario <name>` can play, by transport. */
import { cameraScenarios } from './camera-scenarios.ts'
import { mqttScenarios, type Scenario } from './mqtt-scenarios.ts'
import { serialScenarios } from './serial-scenarios.ts'

export type { RunningScenario, Scenario, ScenarioContext } from './mqtt-scenarios.ts'

export const scenarios: Scenario[] = [...mqttScenarios, ...serialScenarios, ...cameraScenarios]

export function findScenario(name: string): Scenario | undefined {
  return scenarios.find((s) => s.name === name)
}
