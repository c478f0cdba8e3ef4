import type { CloudConfig } from '../config.ts'
import { InfluxStore } from './influx-store.ts'
import { SqliteStore } from './sqlite-store.ts'
import type { EventStore } from './store.ts'

export function createStore(config: CloudConfig['store']): EventStore {
  return config.type === 'influx' ? new InfluxStore({
        url: config.url,
        database: config.database,
        ...(config.rawRetention ? { rawRetention: config.rawRetention } : {}),
        ...(config.longTermRetention ? { longTermRetention: config.longTermRetention } : {}),
        ...(config.shortenRetention ? { shortenRetention: true } : {}),
      }) : new SqliteStore(config.path)
}
