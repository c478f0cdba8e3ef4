/**
 * The broker on its own, for an office that runs it apart from the gateway (or in front of
 * several gateways):
 *
 *   npm run broker -- --config broker.yaml
 */
import { ConfigError } from '../common/config-file.ts'
import { createLogger } from '../common/logger.ts'
import { argValue, onShutdown } from '../common/process.ts'
import { loadStandaloneConfig, startStandalone, type StandaloneConfig } from './standalone.ts'

async function main(argv: string[]): Promise<void> {
  const path = argValue(argv, '--config') ?? process.env.GRIDWATCH_BROKER_CONFIG
  const bootLog = createLogger({ service: 'broker' })
  if (!path) {
    bootLog.fatal({ code: 'BROKER_CONFIG_MISSING' }, 'usage: npm run broker -- --config broker.yaml')
    process.exit(2)
  }
  let config: StandaloneConfig
  try {
    config = loadStandaloneConfig(path)
  } catch (err) {
    if (err instanceof ConfigError) {
      bootLog.fatal({ code: 'BROKER_CONFIG_INVALID', problems: err.problems, config: path }, err.message)
      process.exit(2)
    }
    throw err
  }
  const log = createLogger({ service: 'broker', base: { broker: config.id } })
  const running = await startStandalone(config, log)
  // One machine-readable line, so a supervisor (or a test) learns the bound ports.
  log.info({ code: 'BROKER_READY', ports: running.broker.ports, http: running.httpPort }, 'broker ready')
  onShutdown(log, () => running.stop())
}

await main(process.argv.slice(2))
