import { describe, expect, it } from 'vitest'
import { hashPassword, hashToken, isPasswordHash, tokenMatches, verifyPassword } from '../../common/secrets.ts'
import { DeviceRegistry } from '../../broker/registry.ts'
import { mayPublish, maySubscribe } from '../../broker/acl.ts'

describe('secrets at rest', () => {
  it('scrypt hashes verify the right password only, and never contain it', async () => {
    const h = await hashPassword('s3cret-pass')
    expect(isPasswordHash(h)).toBe(true)
    expect(h).not.toContain('s3cret-pass')
    expect(await verifyPassword('s3cret-pass', h)).toBe(true)
    expect(await verifyPassword('s3cret-pasS', h)).toBe(false)
    expect(await verifyPassword('x', 'plain-text')).toBe(false)
  })

  it('tokens are compared by hash', () => {
    const h = hashToken('abc')
    expect(tokenMatches('abc', h)).toBe(true)
    expect(tokenMatches('abd', h)).toBe(false)
  })
})

describe('device registry', () => {
  it('authenticates by device id and password, with reasons for refusals', async () => {
    const reg = new DeviceRegistry([{ id: 'gas-1', secret: await hashPassword('pw') }])
    expect(await reg.authenticate('gas-1', Buffer.from('pw'))).toEqual({ ok: true, deviceId: 'gas-1', role: 'device' })
    expect(await reg.authenticate('gas-1', Buffer.from('pw'))).toEqual({ ok: true, deviceId: 'gas-1', role: 'device' })
    expect(await reg.authenticate('gas-1', Buffer.from('nope'))).toEqual({ ok: false, reason: 'bad_password' })
    expect(await reg.authenticate('gas-2', Buffer.from('pw'))).toEqual({ ok: false, reason: 'unknown_device' })
    expect(await reg.authenticate(undefined, undefined)).toEqual({ ok: false, reason: 'no_credentials' })
    expect(await reg.authenticate('__proto__', Buffer.from('pw'))).toEqual({ ok: false, reason: 'unknown_device' })
  })

  it('forgets remembered logins when the device list is replaced', async () => {
    const reg = new DeviceRegistry([{ id: 'gas-1', secret: await hashPassword('old') }])
    expect((await reg.authenticate('gas-1', Buffer.from('old'))).ok).toBe(true)
    reg.replace([{ id: 'gas-1', secret: await hashPassword('new') }])
    expect((await reg.authenticate('gas-1', Buffer.from('old'))).ok).toBe(false)
  })

  it('in a login storm, checks a few at a time in arrival order and skips a device that gave up waiting', async () => {
    const ids = ['gas-1', 'gas-2', 'gas-3', 'gas-4']
    const reg = new DeviceRegistry(await Promise.all(ids.map(async (id) => ({ id, secret: await hashPassword(`pw-${id}`) }))), 60_000, 1)
    const finished: string[] = []
    let gas2Waiting = true
    const logins = ids.map((id) =>
      reg.authenticate(id, Buffer.from(`pw-${id}`), () => (id === 'gas-2' ? gas2Waiting : true)).then((r) => {
        finished.push(id)
        return r
      }),
    )
    // gas-2's device closes its socket while gas-1's check runs.
    gas2Waiting = false
    const results = await Promise.all(logins)
    expect(results.map((r) => (r.ok ? 'ok' : r.reason))).toEqual(['ok', 'abandoned', 'ok', 'ok'])
    expect(finished).toEqual(['gas-1', 'gas-2', 'gas-3', 'gas-4'])
  })
})

describe('topic ACL', () => {
  const me = { deviceId: 'gas-1' }
  it.each([
    ['dev/gas-1/reading', true],
    ['dev/gas-1/status', true],
    ['dev/gas-2/reading', false],
    ['dev/gas-10/reading', false],
    ['dev/gas-1', false],
    ['$SYS/broker/x', false],
    ['cmd/gas-1/nack', false],
    // Not topic names at all: what a Will could otherwise carry (PUBLISH wildcards Aedes refuses itself).
    ['dev/gas-1/#', false],
    ['dev/gas-1/+/x', false],
    ['dev/gas-1/a\u0000b', false],
    ['dev/gas-1/\uFFFD', false],
  ])('publish %j → %s', (topic, allowed) => {
    expect(mayPublish(me, topic, false)).toBe(allowed)
  })

  it.each([
    ['cmd/gas-1/#', true],
    ['cmd/gas-1/nack', true],
    ['cmd/gas-1/', false],
    ['cmd/+/nack', false],
    ['cmd/#', false],
    ['#', false],
    ['dev/gas-1/reading', false],
    ['$SYS/#', false],
  ])('subscribe %s → %s', (filter, allowed) => {
    expect(maySubscribe(me, filter, false)).toBe(allowed)
  })

  it('a gateway reads dev/... only; $share/... is refused, since Aedes 1.2 would grant it and deliver nothing', () => {
    const gateway = { deviceId: 'gw-1', role: 'gateway' as const }
    expect(maySubscribe(gateway, 'dev/+/+', false)).toBe(true)
    expect(maySubscribe(gateway, 'dev/#', false)).toBe(true)
    expect(maySubscribe(gateway, '$share/gateways/dev/+/+', false)).toBe(false)
    expect(maySubscribe(gateway, 'cmd/#', false)).toBe(false)
    expect(maySubscribe(gateway, '#', false)).toBe(false)
  })

  it('anonymous clients get nothing unless anonymous mode is on, and never $SYS publishes', () => {
    expect(mayPublish({ deviceId: undefined }, 'dev/x/reading', false)).toBe(false)
    expect(mayPublish({ deviceId: undefined }, 'dev/x/reading', true)).toBe(true)
    expect(mayPublish({ deviceId: undefined }, '$SYS/x', true)).toBe(false)
    for (const topic of ['', '+', '#', 'a/+', 'a\u0000']) expect(mayPublish({ deviceId: undefined }, topic, true), JSON.stringify(topic)).toBe(false)
  })
})
