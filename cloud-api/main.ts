/**
 * cloud-api entry point.
 *
 *   npm run cloud -- [--config center.yaml]      run the API (default: the built-in demo config)
 *   npm run cloud -- token                       print a new token and the hash to configure
 *   npm run cloud -- user|gateway|token ...      manage people and gateways (cloud-api/cli.ts)
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
import { CLI_NOUNS, runCli, UsageError } from './cli.ts'
import { DirectoryConflictError, type Directory } from './access/directory.ts'
import type { Role, ScopeSpec } from './access/principal.ts'
import { demoUserPassword } from '../devices/demo-credentials.ts'

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
  for (const notice of (store as { notices?: string[] }).notices ?? []) log.warn({ code: 'CLOUD_STORE_RETENTION' }, notice)
  const metrics = createCloudMetrics()
  collectDefaultMetrics({ register: metrics.registry, prefix: 'cloud_' })
  let app
  try {
    app = await buildApp({ config, store, logger: log, metrics })
  } catch (err) {
    if (err instanceof DirectoryConflictError) {
      log.fatal({ code: 'CLOUD_DIRECTORY_CONFLICT' }, err.message)
      process.exit(2)
    }
    throw err
  }
  if (!configPath) await seedDemoUsers(app.center.directory, log)
  await app.listen({ host: config.listen.host, port: config.listen.port })
  log.info({ store: store.kind, gateways: config.gateways.length }, 'cloud-api ready')
  onShutdown(log, async () => {
    await app.close()
    await store.close()
  })
}

/** The demo's sign-ins (devices/demo-credentials.ts), made once in the demo center database. */
async function seedDemoUsers(directory: Directory, log: ReturnType<typeof createLogger>): Promise<void> {
  const users: [string, Role, ScopeSpec][] = [
    ['admin', 'admin', {}],
    ['center', 'center', { district: 'pukou' }],
    ['inspector', 'inspector', { enterprises: ['ent-quanyuan-chem'] }],
    ['supervisor', 'supervisor', { offices: ['tangquan'] }],
  ]
  for (const [name, role, scope] of users) {
    if (!directory.user(name)) await directory.addUser(name, role, scope, demoUserPassword(name))
  }
  log.warn({ users: users.map((u) => u[0]) }, 'demo sign-ins exist (password demo-<name>-password). Not for production.')
}

const argv = process.argv.slice(2)
const command = argv.filter((a, i) => !(a === '--config' || argv[i - 1] === '--config'))
if (CLI_NOUNS.includes(command[0] ?? '') && command[1] !== undefined) {
  try {
    const config = loadCloudConfig(argValue(argv, '--config') ?? process.env.GRIDWATCH_CLOUD_CONFIG)
    process.stdout.write((await runCli(command, config)) + '\n')
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      process.stderr.write(err.message + '\n')
      process.exit(2)
    }
    throw err
  }
} else if (argv[0] === 'token') {
  const token = newToken()
  process.stdout.write(`token:     ${token}\ntokenHash: ${hashToken(token)}\n`)
} else {
  await run(argv)
}
