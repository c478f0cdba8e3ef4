/**
 * The camera input's login (Basic credentials, the verification cache, the hold-off after
 * failures, address pinning) and its snapshot store (JPEG check, size cap, oldest-first quota
 * that survives a restart). Clocks are injected; the files live in a temporary directory.
 */
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { hashPassword, verifyPassword } from '../../common/secrets.ts'
import type { DeviceConfig } from '../../gateway/config/schema.ts'
import { CameraAuthenticator, normaliseAddress, parseBasic } from '../../gateway/inputs/camera/auth.ts'
import { DigestVerifier, md5, NONCE_LIFETIME_MS, parseDigest } from '../../gateway/inputs/camera/digest.ts'
import { isJpeg, SnapshotStore } from '../../gateway/inputs/camera/snapshots.ts'
import { digestAuthorization } from '../../devices/camera/isapi-camera.ts'

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

describe('camera login', () => {
  let devices: DeviceConfig[]
  beforeAll(async () => {
    const secret = await hashPassword('right')
    devices = [
      { id: 'cam-1', type: 'camera', via: 'http', secret },
      { id: 'cam-2', type: 'camera', via: 'http', secret },
      // The same password on an MQTT device must not open the HTTP input.
      { id: 'gas-1', type: 'gas-detector', secret },
    ]
  })
  const make = (now: { t: number }, pins = new Map<string, Set<string>>()) =>
    new CameraAuthenticator(devices, { maxFailures: 2, windowMs: 60_000, cacheMs: 600_000, pins }, () => now.t)

  it('reads RFC 7617 credentials, with a colon allowed in the password only', () => {
    expect(parseBasic(basic('cam-1', 'a:b'))).toEqual({ user: 'cam-1', password: 'a:b' })
    expect(parseBasic('basic ' + Buffer.from('cam-1:x').toString('base64'))).toEqual({ user: 'cam-1', password: 'x' })
    expect(parseBasic(basic('', 'x'))).toBeUndefined()
    expect(parseBasic('Basic !!!')).toBeUndefined()
    expect(parseBasic('Digest username="cam-1"')).toBeUndefined()
  })

  it('lets a camera in with its password and no other device', async () => {
    const auth = make({ t: 0 })
    expect(await auth.authenticate(basic('cam-1', 'right'), '10.0.0.1')).toEqual({ ok: true, deviceId: 'cam-1' })
    expect(await auth.authenticate(basic('cam-1', 'wrong'), '10.0.0.1')).toMatchObject({ ok: false, status: 401, reason: 'bad_password', deviceId: 'cam-1' })
    expect(await auth.authenticate(basic('gas-1', 'right'), '10.0.0.1')).toMatchObject({ ok: false, status: 401, reason: 'unknown_camera' })
    expect(await auth.authenticate(undefined, '10.0.0.2')).toMatchObject({ ok: false, status: 401, reason: 'missing' })
  })

  it('remembers a verified login until the cache time runs out, and then verifies again', async () => {
    const now = { t: 0 }
    let scrypts = 0
    const counting = async (password: string, stored: string) => {
      scrypts++
      return verifyPassword(password, stored)
    }
    const auth = new CameraAuthenticator(devices, { maxFailures: 2, windowMs: 60_000, cacheMs: 600_000, pins: new Map() }, () => now.t, counting)
    for (let i = 0; i < 20; i++) expect(await auth.authenticate(basic('cam-1', 'right'), '10.0.0.1')).toEqual({ ok: true, deviceId: 'cam-1' })
    expect(scrypts).toBe(1)
    // A wrong password is never answered from the cache.
    expect((await auth.authenticate(basic('cam-1', 'wrong'), '10.0.0.1')).ok).toBe(false)
    expect(scrypts).toBe(2)
    now.t = 600_001
    expect(await auth.authenticate(basic('cam-1', 'right'), '10.0.0.1')).toEqual({ ok: true, deviceId: 'cam-1' })
    expect(scrypts).toBe(3)
  })

  it('holds off an address after repeated failures for the rest of the window, and lets it try again after', async () => {
    const now = { t: 0 }
    const auth = make(now)
    expect((await auth.authenticate(basic('cam-1', 'x'), '10.0.0.9')).ok).toBe(false)
    expect((await auth.authenticate(basic('cam-1', 'y'), '10.0.0.9')).ok).toBe(false)
    now.t = 15_000
    expect(await auth.authenticate(basic('cam-1', 'right'), '10.0.0.9')).toMatchObject({ ok: false, status: 429, retryAfterSeconds: 45 })
    // Another address is not affected.
    expect((await auth.authenticate(basic('cam-1', 'right'), '10.0.0.10')).ok).toBe(true)
    // Now cached, the right login passes even from the held-off address.
    expect((await auth.authenticate(basic('cam-1', 'right'), '10.0.0.9')).ok).toBe(true)
    expect((await auth.authenticate(basic('cam-1', 'z'), '10.0.0.11')).ok).toBe(false)
    expect((await auth.authenticate(basic('cam-1', 'z'), '10.0.0.11')).ok).toBe(false)
    now.t = 75_001
    expect(await auth.authenticate(basic('cam-1', 'z'), '10.0.0.11')).toMatchObject({ status: 401, reason: 'bad_password' })
  })

  it('refuses a pinned camera from another address, also when its login is cached', async () => {
    const auth = make({ t: 0 }, new Map([['cam-2', new Set(['10.0.0.5'])]]))
    expect((await auth.authenticate(basic('cam-2', 'right'), '::ffff:10.0.0.5')).ok).toBe(true)
    expect(await auth.authenticate(basic('cam-2', 'right'), '10.0.0.6')).toMatchObject({ ok: false, status: 403, reason: 'address_not_allowed' })
    expect(normaliseAddress('::ffff:10.0.0.5')).toBe('10.0.0.5')
    expect(normaliseAddress('fe80::1')).toBe('fe80::1')
  })
})

describe('camera Digest login', () => {
  const REALM = 'GridWatch camera input'
  const PATH = '/ISAPI/Event/notification/alert'
  const make = (now: { t: number }) => new DigestVerifier(REALM, new Map([['cam-1', md5(`cam-1:${REALM}:right`)]]), () => now.t)
  const answer = (v: DigestVerifier, password = 'right', nc = 1, uri = PATH) => digestAuthorization(v.challenge(), 'cam-1', password, 'POST', uri, nc)

  it('reads quoted, escaped and bare parameters, and nothing that is not Digest', () => {
    expect(parseDigest('Digest username="a\\"b", realm="x, y", nc=00000001, qop=auth')).toEqual({ username: 'a"b', realm: 'x, y', nc: '00000001', qop: 'auth' })
    expect(parseDigest('Basic YTpi')).toBeUndefined()
    expect(parseDigest('Digest username="a" realm="b"')).toBeUndefined()
  })

  it('accepts the RFC 7616 answer to its own challenge, with growing nonce counts', () => {
    const now = { t: 1_000 }
    const v = make(now)
    const challenge = v.challenge()
    expect(v.verify(digestAuthorization(challenge, 'cam-1', 'right', 'POST', PATH, 1), 'POST', PATH)).toEqual({ ok: true, user: 'cam-1' })
    expect(v.verify(digestAuthorization(challenge, 'cam-1', 'right', 'POST', PATH, 2), 'POST', PATH)).toEqual({ ok: true, user: 'cam-1' })
    // The same count again is a replay.
    expect(v.verify(digestAuthorization(challenge, 'cam-1', 'right', 'POST', PATH, 2), 'POST', PATH)).toMatchObject({ ok: false, reason: 'stale_nonce' })
  })

  it('refuses a wrong password, another path, another method, an unknown user', () => {
    const v = make({ t: 1_000 })
    expect(v.verify(answer(v, 'wrong'), 'POST', PATH)).toMatchObject({ ok: false, reason: 'bad_password', user: 'cam-1' })
    expect(v.verify(answer(v, 'right', 1, '/other'), 'POST', PATH)).toMatchObject({ ok: false, reason: 'malformed' })
    expect(v.verify(answer(v), 'PUT', PATH)).toMatchObject({ ok: false, reason: 'bad_password' })
    expect(v.verify(digestAuthorization(v.challenge(), 'cam-9', 'right', 'POST', PATH), 'POST', PATH)).toMatchObject({ ok: false, reason: 'unknown_camera' })
  })

  it('calls a nonce stale when it expired or is not its own, only once the password was right', () => {
    const now = { t: 1_000 }
    const v = make(now)
    const old = answer(v)
    now.t += NONCE_LIFETIME_MS + 1
    expect(v.verify(old, 'POST', PATH)).toMatchObject({ ok: false, reason: 'stale_nonce' })
    const forged = digestAuthorization('Digest realm="GridWatch camera input", nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"', 'cam-1', 'right', 'POST', PATH)
    expect(v.verify(forged, 'POST', PATH)).toMatchObject({ ok: false, reason: 'stale_nonce' })
    const forgedWrong = digestAuthorization('Digest realm="GridWatch camera input", nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"', 'cam-1', 'guess', 'POST', PATH)
    expect(v.verify(forgedWrong, 'POST', PATH)).toMatchObject({ ok: false, reason: 'bad_password' })
    expect(make(now).verify(answer(v), 'POST', PATH)).toMatchObject({ ok: false, reason: 'stale_nonce' })
  })
})

describe('snapshot store', () => {
  const jpeg = (n: number, fill = 0) => Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(n - 4, fill)])
  const files = (store: SnapshotStore) =>
    readdirSync(store.dir)
      .flatMap((cam) => readdirSync(join(store.dir, cam)).map((f) => `snapshots/${cam}/${f}`))
      .sort()

  it('checks the JPEG SOI marker', () => {
    expect(isJpeg(jpeg(10))).toBe(true)
    expect(isJpeg(Buffer.from('89504e470d0a1a0a', 'hex'))).toBe(false)
    expect(isJpeg(Buffer.from([0xff, 0xd8]))).toBe(false)
  })

  it('keeps within its quota by removing the oldest first, across cameras', async () => {
    const store = new SnapshotStore(mkdtempSync(join(tmpdir(), 'gw-snap-')), { maxBytes: 1000, quotaBytes: 250 })
    store.load()
    const a = await store.save('cam-1', jpeg(100), 1)
    const b = await store.save('cam-2', jpeg(100), 2)
    const c = await store.save('cam-1', jpeg(100), 3)
    expect([a.ok, b.ok, c.ok]).toEqual([true, true, true])
    expect(c.ok && c.evicted).toBe(1)
    expect(files(store)).toEqual([b, c].map((r) => (r.ok ? r.ref : '')).sort())
    expect(store.usedBytes).toBe(200)
  })

  it('drops what is too large, over the whole quota, or not a JPEG, and keeps nothing of it', async () => {
    const store = new SnapshotStore(mkdtempSync(join(tmpdir(), 'gw-snap-')), { maxBytes: 300, quotaBytes: 200 })
    store.load()
    expect(await store.save('cam-1', jpeg(301), 1)).toMatchObject({ ok: false, reason: 'too_large' })
    expect(await store.save('cam-1', jpeg(250), 1)).toMatchObject({ ok: false, reason: 'over_quota' })
    expect(await store.save('cam-1', Buffer.from('GIF89a....'), 1)).toMatchObject({ ok: false, reason: 'not_jpeg' })
    expect(files(store)).toEqual([])
    expect(store.usedBytes).toBe(0)
  })

  it('counts what an earlier run left, so the quota holds after a restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'gw-snap-'))
    const first = new SnapshotStore(dataDir, { maxBytes: 1000, quotaBytes: 250 })
    first.load()
    const old = await first.save('cam-1', jpeg(100), 1)
    writeFileSync(join(first.dir, 'cam-1', 'not-a-snapshot.txt'), 'ignored')
    const second = new SnapshotStore(dataDir, { maxBytes: 1000, quotaBytes: 250 })
    second.load()
    expect(second.usedBytes).toBe(100)
    await second.save('cam-1', jpeg(100), 2)
    const latest = await second.save('cam-1', jpeg(100), 3)
    expect(latest.ok && latest.evicted).toBe(1)
    expect(files(second)).not.toContain(old.ok ? old.ref : '')
  })

  it('removes the snapshot of an event that was not stored', async () => {
    const store = new SnapshotStore(mkdtempSync(join(tmpdir(), 'gw-snap-')), { maxBytes: 1000, quotaBytes: 1000 })
    store.load()
    const saved = await store.save('cam-1', jpeg(100), 1)
    if (!saved.ok) throw new Error(saved.message)
    await store.remove(saved.ref)
    expect(files(store)).toEqual([])
    expect(store.usedBytes).toBe(0)
  })
})
