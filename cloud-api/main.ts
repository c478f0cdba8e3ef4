/**
 * cloud-api entry point.
 *
 *   npm run cloud -- [--config center.yaml]      run the API (default: the built-in demo config)
 *   npm run cloud -- token                       print a new token and the hash to configure
 *
 * STORE=influx INFLUX_URL=http://host:8086 switches the event store to InfluxDB.
 */
import { createLogger } from '../common/logger.ts'
import { ConfigError } from '../common/config-file.ts'
import { argValue, onShutdown } from '../common/process.ts'
import { hashToken, newToken } from '../common/secrets.ts'
import { buildApp } from './app.ts'
import { loadCloudConfig } from './config.ts'
import { createStore } from './store/create.ts'
import { collectDefaultMetrics } from 'prom-client'
import { createCloudMetrics } from './metrics.ts'

async function run(argv: string[]): Promise<void> {
  const log = createLogger({ service: 'cloud-api' })
  const configPath = argValue(argv, '--config') ?? process.env.GRIDWATCH_CLOUD_CONFIG
  let config
  try {
    config = loadCloudConfig(configPath)
  } catch (err) {
    if (err instanceof ConfigError) {
      log.fatal({ code: 'CLOUD_CONFIG_INVALID', problems: err.problems }, err.message)
      process.exit(2)
    }
    throw err
  }
  if (!configPath) log.warn('running the built-in demo config: demo tokens, open reads. Not for production.')
  if (config.reads.open) log.warn({ code: 'CLOUD_OPEN_READS' }, 'reads.open is on: anyone who can reach this API can read alerts and series')

  const store = createStore(config.store)
  // Start even if the store is down: /readyz says so, ingest answers 503, gateways keep their data.
  await store.open().catch((err: unknown) => log.error({ err: (err as Error).message, code: 'CLOUD_STORE_UNAVAILABLE' }, 'event store not reachable at start'))
  const metrics = createCloudMetrics()
  collectDefaultMetrics({ register: metrics.registry, prefix: 'cloud_' })
  const app = await buildApp({ config, store, logger: log, metrics })
  await app.listen({ host: config.listen.host, port: config.listen.port })
  log.info({ store: store.kind, gateways: config.gateways.length }, 'cloud-api ready')
  onShutdown(log, async () => {
    await app.close()
    await store.close()
  })
}

const argv = process.argv.slice(2)
if (argv[0] === 'token') {
  const token = newToken()
  process.stdout.write(`token:     ${token}\ntokenHash: ${hashToken(token)}\n`)
} else {
  await run(argv)
}
