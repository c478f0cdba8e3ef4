/**
 * A simulated plant OPC UA server as a process of its own (the benchmark runs it apart from the
 * gateway, so the gateway's CPU is measured alone; `npm run devices` may hand its flags here).
 *
 *   tsx devices/opcua/serve.ts --port 4840 [--count 10000] [--change-ms 1000] [--pki var/plant-pki]
 *
 * With --count, variables are gas-00001, temperature-00002, pressure-00003, ...; without it, the
 * three of `defaultPlantVariables`. --change-ms changes every value that often (0: never); gas
 * stays below the 25 %LEL low alarm. Prints one JSON line when ready: {"ready":true,"endpointUrl":…}.
 */
import { argValue } from '../../common/process.ts'
import { defaultPlantVariables, manyVariables, startPlantServer } from './plant-server.ts'

const argv = process.argv.slice(2)
const port = Number(argValue(argv, '--port') ?? 4840)
const count = argValue(argv, '--count')
const changeMs = Number(argValue(argv, '--change-ms') ?? 1000)
const pkiDir = argValue(argv, '--pki') ?? 'var/plant-pki'

const variables = count === undefined ? defaultPlantVariables : manyVariables(Number(count))
const started = Date.now()
const plant = await startPlantServer({ port, pkiDir, variables, acceptAnyClientCertificate: true })

// A slow wave per variable, phase-shifted so neighbours differ; every tick changes every value.
const base = variables.map((v) => (v.quantity === 'gas' ? 5 : v.quantity === 'temperature' ? 20 : 100))
let tick = 0
const change = () => {
  tick++
  plant.setAll((i) => base[i] + ((tick + i) % 10) * 0.5 + (tick % 2) * 0.01)
}
const timer = changeMs > 0 ? setInterval(change, changeMs) : undefined

process.stdout.write(JSON.stringify({ ready: true, endpointUrl: plant.endpointUrl, variables: variables.length, startMs: Date.now() - started }) + '\n')

const stop = async () => {
  if (timer) clearInterval(timer)
  await plant.stop()
  process.exit(0)
}
process.once('SIGTERM', () => void stop())
process.once('SIGINT', () => void stop())
