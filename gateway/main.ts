/**
 * Gateway entry point.
 *
 *   npm run gateway -- [--config office.yaml]     run the gateway (default: the demo office)
 *   npm run gateway -- hash-secret                read a device password on stdin, print its hash
 */
import { createInterface } from 'node:readline'
import { hashPassword } from '../common/secrets.ts'
import { createLogger } from '../common/logger.ts'
import { ConfigError } from '../common/config-file.ts'
import { argValue, onShutdown } from '../common/process.ts'
import { DEMO_CONFIG_PATH, loadGatewayConfig } from './config/load.ts'
import { Gateway } from './gateway.ts'
import { OutboxOwnerError } from './outbox/outbox.ts'

async function hashSecret(): Promise<void> {
  const rl = createInterface({ input: process.stdin, terminal: false })
  for await (const line of rl) {
    if (line.length > 0) process.stdout.write((await hashPassword(line)) + '\n')
  }
}

async function run(argv: string[]): Promise<void> {
  const configPath = argValue(argv, '--config') ?? process.env.GRIDWATCH_GATEWAY_CONFIG ?? DEMO_CONFIG_PATH
  const bootLog = createLogger({ service: 'gateway' })
  let config
  try {
    config = loadGatewayConfig(configPath)
  } catch (err) {
    if (err instanceof ConfigError) {
      bootLog.fatal({ code: 'GW_CONFIG_INVALID', problems: err.problems, config: configPath }, err.message)
      process.exit(2)
    }
    throw err
  }
  const log = createLogger({ service: 'gateway', base: { office: config.office.id, gateway: config.gateway.id } })
  if (configPath === DEMO_CONFIG_PATH) log.warn({ config: configPath }, 'running the built-in demo office config')
  let gateway: Gateway
  try {
    gateway = await Gateway.start(config, { logger: log })
  } catch (err) {
    if (err instanceof OutboxOwnerError) {
      log.fatal({ code: 'GW_OUTBOX_OTHER_OWNER' }, err.message)
      process.exit(2)
    }
    throw err
  }
  onShutdown(log, () => gateway.stop(Number(process.env.GRIDWATCH_DRAIN_MS ?? 3000)))
  // SIGHUP re-reads the office config; a broken file is refused and the running config kept.
  process.on('SIGHUP', () => {
    try {
      gateway.reload(loadGatewayConfig(configPath))
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : undefined
      log.error({ code: 'GW_CONFIG_INVALID', problems, err: (err as Error).message }, 'config reload refused; keeping the running config')
    }
  })
}

const argv = process.argv.slice(2)
if (argv[0] === 'hash-secret') await hashSecret()
else await run(argv)
