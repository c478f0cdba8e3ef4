/**
 * `npm run cloud -- user|gateway|token ...`: the CLI writes to the center database that the
 * running API reads, and never prints or stores a secret it should not.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { buildApp } from '../../cloud-api/app.ts'
import { runCli, UsageError } from '../../cloud-api/cli.ts'
import { DirectoryConflictError } from '../../cloud-api/access/directory.ts'
import { SqliteStore } from '../../cloud-api/store/sqlite-store.ts'
import { silentLogger } from '../../common/logger.ts'
import { hashToken } from '../../common/secrets.ts'
import { centerConfig, FieldFactory, organization } from '../helpers/center.ts'
import { removeTestDir } from '../helpers/temp.ts'

const run = promisify(execFile)

describe('cloud CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gridwatch-cli-'))
  const config = centerConfig({ center: { path: join(dir, 'center.db') } })
  const configFile = join(dir, 'center.yaml')
  afterAll(() => removeTestDir(dir))
  beforeAll(() => {
    writeFileSync(configFile, stringify({ center: { path: join(dir, 'center.db') }, store: { type: 'sqlite', path: join(dir, 'events.db') }, organization }))
  })

  it('adds a user with a password from stdin, who then signs in to the API', async () => {
    expect(await runCli(['user', 'add', 'sun', '--role', 'center', '--district', 'd-north', '--password-stdin'], config, () => 'correct horse battery\n')).toBe('added sun (center)')
    const store = new SqliteStore(':memory:')
    await store.open()
    const app = await buildApp({ config, store, logger: silentLogger() })
    try {
      const session = await app.inject({ method: 'POST', url: '/v1/session', payload: { name: 'sun', password: 'correct horse battery' } })
      expect(session.json()).toMatchObject({ user: { name: 'sun', role: 'center', offices: ['o-a', 'o-b'] } })
    } finally {
      await app.close()
      await store.close()
    }
    // Only a scrypt hash is at rest.
    expect(readFileSync(join(dir, 'center.db')).includes(Buffer.from('correct horse battery'))).toBe(false)
  })

  it('generates and shows a password once when none is given', async () => {
    const out = await runCli(['user', 'add', 'qian', '--role', 'supervisor', '--offices', 'o-a'], config)
    expect(out).toMatch(/^added qian \(supervisor\)\npassword: \S{16}/)
  })

  it('registers a gateway whose token ingests; revoking it stops it', async () => {
    const out = await runCli(['gateway', 'add', 'gw-cli', '--office', 'o-b'], config)
    const token = /token: (\S+)/.exec(out)![1]
    const store = new SqliteStore(':memory:')
    await store.open()
    const app = await buildApp({ config, store, logger: silentLogger() })
    const ingest = () =>
      app.inject({ method: 'POST', url: '/v1/ingest', headers: { authorization: `Bearer ${token}` }, payload: { envelopes: [new FieldFactory('gw-cli', 'o-b').readingOf('gas-b1', Date.now(), 1, 'e-b1')] } })
    try {
      expect((await ingest()).statusCode).toBe(200)
      const id = (await runCli(['token', 'list'], config)).split('\n').find((l) => l.includes('gateway:gw-cli'))!.split('\t')[0]
      expect(await runCli(['token', 'revoke', id], config)).toBe(`revoked ${id}`)
      expect((await ingest()).statusCode).toBe(401)
    } finally {
      await app.close()
      await store.close()
    }
  })

  it('refuses bad input with a usage message, not a stack trace', async () => {
    await expect(runCli(['user', 'add', 'x', '--role', 'emperor'], config)).rejects.toThrow(UsageError)
    await expect(runCli(['user', 'add', 'sun', '--role', 'admin'], config)).rejects.toThrow(/exists/)
    await expect(runCli(['gateway', 'add', 'gw-x', '--office', 'nowhere'], config)).rejects.toThrow(/no office/)
    await expect(runCli(['user', 'token', 'sun', '--label', 'x', '--ttl-hours', '12h'], config)).rejects.toThrow(/--ttl-hours must be a number/)
    // A name the API's schemas would refuse could never sign in or be managed there.
    await expect(runCli(['user', 'add', 'Zhang Wei', '--role', 'admin'], config)).rejects.toThrow(/name "Zhang Wei" is not an id/)
    await expect(runCli(['gateway', 'add', '../gw', '--office', 'o-a'], config)).rejects.toThrow(/id "..\/gw" is not an id/)
    expect(await runCli(['user', 'list'], config)).not.toContain('Zhang Wei')
  })

  it('the API refuses to start when the config declares a gateway the database also has', async () => {
    const store = new SqliteStore(':memory:')
    await runCli(['gateway', 'add', 'gw-twice', '--office', 'o-a'], config)
    const clashing = centerConfig({ center: { path: join(dir, 'center.db') }, gateways: [{ id: 'gw-twice', office: 'o-b', tokenHash: hashToken('tok-twice-0123456789abcdefgh') }] })
    await expect(buildApp({ config: clashing, store, logger: silentLogger() })).rejects.toThrow(/gateways "gw-twice" are declared in the config file and also exist in the center database/)
  })

  it('the API refuses to start when the config declares a user the database also has', async () => {
    const store = new SqliteStore(':memory:')
    const clashing = centerConfig({ center: { path: join(dir, 'center.db') }, users: [{ name: 'sun', role: 'admin', scope: {}, tokenHashes: [] }] })
    await expect(buildApp({ config: clashing, store, logger: silentLogger() })).rejects.toThrow(DirectoryConflictError)
  })

  it('runs as `npm run cloud -- user list --config FILE`', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'cloud-api/main.ts', 'user', 'list', '--config', configFile], { timeout: 60_000 })
    expect(stdout).toContain('sun\tcenter')
    const failed = await run(process.execPath, ['--import', 'tsx', 'cloud-api/main.ts', 'user', 'remove', 'nobody', '--config', configFile], { timeout: 60_000 }).catch((err: { code: number; stderr: string }) => err)
    expect(failed).toMatchObject({ code: 2, stderr: expect.stringContaining('no user "nobody"') })
  })

})
