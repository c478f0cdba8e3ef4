/**
 * aedes-persistence's own abstract test suite (node:test), run against our SQLite persistence.
 * Started by persistence.test.ts, which asserts that every case passes.
 */
import { test } from 'node:test'
import { createRequire } from 'node:module'
import { SqlitePersistence } from '../../broker/persistence.ts'

const require = createRequire(import.meta.url)
const abstractPersistence = require('aedes-persistence/abstract.js') as (opts: object) => void

abstractPersistence({
  test,
  testAsync: true,
  persistence: () => new SqlitePersistence({ path: ':memory:' }),
})
