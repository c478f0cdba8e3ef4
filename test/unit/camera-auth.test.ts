/**
 * The camera input's login (Basic credentials, the verification cache, the hold-off after
 * failures, the caps on concurrent scrypt, address pinning, a device reload), Digest's replay
 * table, and its snapshot store (JPEG check, size cap, oldest-first quota that survives a
 * restart, fsync and clean-up of cut-short writes). Clocks and scrypt are injected where timing
 * matters; the files live in a temporary directory.
 */
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs'
import * as fsp from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { hashPassword, verifyPassword } from '../../common/secrets.ts'
import type { DeviceConfig } from '../../gateway/config/schema.ts'
import { CameraAuthenticator, normaliseAddress, parseBasic } from '../../gateway/inputs/camera/auth.ts'
import { DigestVerifier, md5, NONCE_LIFETIME_MS, parseDigest } from '../../gateway/inputs/camera/digest.ts'
import { isJpeg, SnapshotStore, type SnapshotFs } from '../../gateway/inputs/camera/snapshots.ts'
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

  it('does not clear an address\'s failures when a camera logs in from it (a guesser behind the camera\'s NAT)', async () => {
    const now = { t: 0 }
    const auth = make(now)
    expect((await auth.authenticate(basic('cam-1', 'guess-1'), '10.0.0.20')).ok).toBe(false)
    // Verified afresh, then from the cache: neither hands the address fresh tries.
    expect((await auth.authenticate(basic('cam-1', 'right'), '10.0.0.20')).ok).toBe(true)
    expect((await auth.authenticate(basic('cam-1', 'right'), '10.0.0.20')).ok).toBe(true)
    expect((await auth.authenticate(basic('cam-1', 'guess-2'), '10.0.0.20')).ok).toBe(false)
    expect(await auth.authenticate(basic('cam-1', 'guess-3'), '10.0.0.20')).toMatchObject({ status: 429, reason: 'rate_limited' })
    // Once the window has passed, the address starts afresh.
    now.t = 60_000
    expect(await auth.authenticate(basic('cam-1', 'guess-3'), '10.0.0.20')).toMatchObject({ status: 401, reason: 'bad_password' })
  })

  it('makes room among 10,000 tracked addresses by forgetting expired windows, not every hold-off', async () => {
    const now = { t: 0 }
    const auth = make(now)
    // An unknown user fails without scrypt, so this is quick.
    for (let i = 0; i < 9_999; i++) await auth.authenticate(basic('nobody', 'x'), `fd00::${i.toString(16)}`)
    now.t = 60_000
    await auth.authenticate(basic('nobody', 'x'), '10.0.0.21')
    await auth.authenticate(basic('nobody', 'x'), '10.0.0.21')
    // The 10,001st address: the table is full.
    await auth.authenticate(basic('nobody', 'x'), '10.0.0.22')
    expect(await auth.authenticate(basic('cam-1', 'guess'), '10.0.0.21')).toMatchObject({ status: 429, reason: 'rate_limited' })
  })

  it('counts a running verification against its address, so guesses sent at once do not all run scrypt (a cached login still passes)', async () => {
    let scrypts = 0
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const held = async (password: string, stored: string) => {
      if (password === 'right') return verifyPassword(password, stored)
      scrypts++
      await gate
      return false
    }
    const auth = new CameraAuthenticator(devices, { maxFailures: 10, windowMs: 60_000, cacheMs: 600_000, pins: new Map() }, () => 0, held)
    expect((await auth.authenticate(basic('cam-1', 'right'), '10.0.0.30')).ok).toBe(true)
    const guesses = Array.from({ length: 500 }, (_, i) => auth.authenticate(basic('cam-1', `guess-${i}`), '10.0.0.30'))
    // The camera's own login, already verified, is not held up by the guesses from its address.
    expect(await auth.authenticate(basic('cam-1', 'right'), '10.0.0.30')).toEqual({ ok: true, deviceId: 'cam-1' })
    release()
    const results = await Promise.all(guesses)
    expect(scrypts).toBe(2)
    expect(results.filter((r) => !r.ok && r.status === 401)).toHaveLength(2)
    expect(results.filter((r) => !r.ok && r.status === 429 && r.retryAfterSeconds === 1)).toHaveLength(498)
  })

  it('holds off an address whose running verifications would reach maxFailures', async () => {
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const held = async () => {
      await gate
      return false
    }
    const auth = new CameraAuthenticator(devices, { maxFailures: 1, windowMs: 60_000, cacheMs: 600_000, pins: new Map() }, () => 0, held)
    const first = auth.authenticate(basic('cam-1', 'guess-1'), '10.0.0.31')
    const second = auth.authenticate(basic('cam-1', 'guess-2'), '10.0.0.31')
    release()
    expect(await second).toMatchObject({ status: 429, reason: 'rate_limited', retryAfterSeconds: 1 })
    expect(await first).toMatchObject({ status: 401, reason: 'bad_password' })
    expect(await auth.authenticate(basic('cam-1', 'guess-3'), '10.0.0.31')).toMatchObject({ status: 429, retryAfterSeconds: 60 })
  })

  it('runs only so many verifications at once over all addresses, queues a few, and answers 429 beyond', async () => {
    let running = 0
    let peak = 0
    let calls = 0
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const held = async () => {
      running++
      peak = Math.max(peak, running)
      // The second call fills both slots: from then on the waiting ones may go.
      if (++calls === 2) release()
      await gate
      running--
      return false
    }
    const settings = { maxFailures: 10, windowMs: 60_000, cacheMs: 600_000, pins: new Map<string, Set<string>>(), maxVerifications: 2, maxWaiting: 3 }
    const auth = new CameraAuthenticator(devices, settings, () => 0, held)
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => auth.authenticate(basic('cam-1', 'guess'), `10.0.1.${i}`)))
    expect(peak).toBe(2)
    expect(calls).toBe(5)
    expect(results.filter((r) => !r.ok && r.reason === 'bad_password')).toHaveLength(5)
    expect(results.filter((r) => !r.ok && r.status === 429 && r.reason === 'busy' && r.retryAfterSeconds === 1)).toHaveLength(5)
  })

  it('keeps hold-offs, remembered logins of unchanged cameras and Digest nonces across a device reload', async () => {
    const now = { t: 1_000 }
    let scrypts = 0
    const counting = async (password: string, stored: string) => {
      scrypts++
      return verifyPassword(password, stored)
    }
    const REALM = 'GridWatch camera input'
    const settings = { maxFailures: 2, windowMs: 60_000, cacheMs: 600_000, pins: new Map<string, Set<string>>(), digestHa1: new Map([['cam-2', md5(`cam-2:${REALM}:right`)]]) }
    const auth = new CameraAuthenticator(devices, settings, () => now.t, counting)
    expect((await auth.authenticate(basic('cam-1', 'right'), '10.0.0.40')).ok).toBe(true)
    expect((await auth.authenticate(basic('cam-2', 'right'), '10.0.0.40')).ok).toBe(true)
    for (const guess of ['x', 'y']) expect((await auth.authenticate(basic('cam-1', guess), '10.0.0.41')).ok).toBe(false)
    const challenge = auth.challenges().find((c) => c.startsWith('Digest'))!
    const PATH = '/ISAPI/Event/notification/alert'
    expect(await auth.authenticate(digestAuthorization(challenge, 'cam-2', 'right', 'POST', PATH, 1), '10.0.0.42', 'POST', PATH)).toEqual({ ok: true, deviceId: 'cam-2' })
    const scryptsBefore = scrypts

    // cam-1 unchanged, cam-2 given a new secret.
    const newSecret = await hashPassword('renewed')
    auth.replaceDevices(devices.map((d) => (d.id === 'cam-2' ? { ...d, secret: newSecret } : d)))
    expect(await auth.authenticate(basic('cam-1', 'right'), '10.0.0.41')).toEqual({ ok: true, deviceId: 'cam-1' })
    expect(scrypts).toBe(scryptsBefore)
    expect(await auth.authenticate(basic('cam-1', 'z'), '10.0.0.41')).toMatchObject({ status: 429, reason: 'rate_limited' })
    expect(await auth.authenticate(basic('cam-2', 'right'), '10.0.0.40')).toMatchObject({ status: 401, reason: 'bad_password' })
    expect(scrypts).toBe(scryptsBefore + 1)
    // The nonce handed out before the reload is still good, and its count still guards replays.
    expect(await auth.authenticate(digestAuthorization(challenge, 'cam-2', 'right', 'POST', PATH, 2), '10.0.0.42', 'POST', PATH)).toEqual({ ok: true, deviceId: 'cam-2' })
    expect(await auth.authenticate(digestAuthorization(challenge, 'cam-2', 'right', 'POST', PATH, 2), '10.0.0.42', 'POST', PATH)).toMatchObject({ reason: 'stale_nonce' })
    // A removed camera's remembered login goes with it, and is not back when the camera is.
    auth.replaceDevices(devices.filter((d) => d.id !== 'cam-1'))
    expect(await auth.authenticate(basic('cam-1', 'right'), '10.0.0.43')).toMatchObject({ status: 401, reason: 'unknown_camera' })
    auth.replaceDevices(devices)
    expect((await auth.authenticate(basic('cam-1', 'right'), '10.0.0.43')).ok).toBe(true)
    expect(scrypts).toBe(scryptsBefore + 2)
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

  it('makes room in a full replay table by forgetting expired nonces only, so a live one cannot be replayed', () => {
    const now = { t: 0 }
    const v = new DigestVerifier(REALM, new Map([['cam-1', md5(`cam-1:${REALM}:right`)]]), () => now.t, 2)
    expect(v.verify(answer(v), 'POST', PATH).ok).toBe(true)
    now.t = 200_000
    const live = answer(v)
    expect(v.verify(live, 'POST', PATH).ok).toBe(true)
    // The first nonce has expired; a third fills the table.
    now.t = NONCE_LIFETIME_MS + 1
    expect(v.verify(answer(v), 'POST', PATH).ok).toBe(true)
    expect(v.verify(live, 'POST', PATH)).toMatchObject({ ok: false, reason: 'stale_nonce' })
  })
})

describe('snapshot store', () => {
  const jpeg = (n: number, fill = 0) => Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(n - 4, fill)])
  /** The store's file operations, as short steps: which file, never the temporary directory's path. */
  const recording = (steps: string[]): SnapshotFs => {
    const name = (p: string) => (p.endsWith('.tmp') ? '.tmp' : p.endsWith('.jpg') ? '.jpg' : basename(p))
    return {
      ...fsp,
      mkdir: (async (p: string, o: object) => {
        steps.push(`mkdir ${name(p)}`)
        return fsp.mkdir(p, o)
      }) as SnapshotFs['mkdir'],
      rename: async (from, to) => {
        steps.push(`rename ${name(String(from))} → ${name(String(to))}`)
        return fsp.rename(from, to)
      },
      unlink: async (p) => {
        steps.push(`unlink ${name(String(p))}`)
        return fsp.unlink(p)
      },
      open: (async (p: string, flags: string) => {
        steps.push(`open ${name(p)} ${flags}`)
        const handle = await fsp.open(p, flags)
        return Object.assign(Object.create(handle) as FileHandle, {
          writeFile: (bytes: Buffer) => {
            steps.push(`write ${name(p)}`)
            return handle.writeFile(bytes)
          },
          sync: () => {
            steps.push(`sync ${name(p)}`)
            return handle.sync()
          },
          close: () => {
            steps.push(`close ${name(p)}`)
            return handle.close()
          },
        })
      }) as SnapshotFs['open'],
    }
  }
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

  it('removes a half-written file when the disk is full, and the quota does not count it', async () => {
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
    const full: SnapshotFs = {
      ...fsp,
      open: (async (path: string, flags: string) => {
        const handle = await fsp.open(path, flags)
        if (flags !== 'w') return handle
        // Some bytes reach the file before the disk fills up.
        return Object.assign(Object.create(handle) as FileHandle, {
          writeFile: async (bytes: Buffer) => {
            await handle.write(bytes.subarray(0, 10))
            throw enospc
          },
        })
      }) as SnapshotFs['open'],
    }
    const store = new SnapshotStore(mkdtempSync(join(tmpdir(), 'gw-snap-')), { maxBytes: 1000, quotaBytes: 1000 }, full)
    store.load()
    expect(await store.save('cam-1', jpeg(100), 1)).toMatchObject({ ok: false, reason: 'write_failed', message: enospc.message })
    expect(files(store)).toEqual([])
    expect(store.usedBytes).toBe(0)
  })

  it('removes the .tmp files of writes an earlier run did not finish', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'gw-snap-'))
    const first = new SnapshotStore(dataDir, { maxBytes: 1000, quotaBytes: 1000 })
    first.load()
    const kept = await first.save('cam-1', jpeg(100), 1)
    if (!kept.ok) throw new Error(kept.message)
    writeFileSync(join(first.dir, 'cam-1', '.0000000000002-0badf00d.jpg.tmp'), jpeg(50))
    const second = new SnapshotStore(dataDir, { maxBytes: 1000, quotaBytes: 1000 })
    second.load()
    expect(files(second)).toEqual([kept.ref])
    expect(second.usedBytes).toBe(100)
  })

  it('syncs the snapshot to disk before renaming it, and its directory after', async () => {
    const steps: string[] = []
    const store = new SnapshotStore(mkdtempSync(join(tmpdir(), 'gw-snap-')), { maxBytes: 1000, quotaBytes: 1000 }, recording(steps))
    store.load()
    const saved = await store.save('cam-1', jpeg(100), 1)
    if (!saved.ok) throw new Error(saved.message)
    expect(steps).toEqual([
      'mkdir cam-1',
      'open snapshots r',
      'sync snapshots',
      'close snapshots',
      'open .tmp w',
      'write .tmp',
      'sync .tmp',
      'close .tmp',
      'rename .tmp → .jpg',
      'open cam-1 r',
      'sync cam-1',
      'close cam-1',
    ])
    // The camera's directory exists now: no second sync of snapshots/.
    steps.length = 0
    await store.save('cam-1', jpeg(100), 2)
    expect(steps.filter((s) => s.startsWith('sync'))).toEqual(['sync .tmp', 'sync cam-1'])
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
