/**
 * Who is pushing: HTTP Basic (RFC 7617) with the camera's device id as user and its password,
 * checked against the device's scrypt `secret`. scrypt is slow on purpose (~50 ms, 16 MiB, on
 * libuv's small thread pool that the gateway's fs and crypto share), and a camera posts many
 * events a minute, so a verified login is remembered for a while under a hash of the credentials;
 * failures are never remembered. Guessing is held off before scrypt runs: an address that keeps
 * failing waits out its window, a verification counts against the address while it runs, and
 * only a few run at once per address and overall (a brute-force and CPU-exhaustion guard).
 *
 * Digest (RFC 7616) cannot be checked against a scrypt hash; a camera that can only do Digest
 * is given its HA1 in the input's config (digest.ts), and is held off and pinned the same way.
 */
import { createHash } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { verifyPassword } from '../../../common/secrets.ts'
import type { DeviceConfig } from '../../config/schema.ts'
import { DigestVerifier } from './digest.ts'

export const REALM = 'GridWatch camera input'
export const BASIC_CHALLENGE = `Basic realm="${REALM}", charset="UTF-8"`

export type AuthResult =
  | { ok: true; deviceId: string }
  | {
      ok: false
      status: 401 | 403 | 429
      reason: 'missing' | 'malformed' | 'unknown_camera' | 'bad_password' | 'stale_nonce' | 'address_not_allowed' | 'rate_limited' | 'busy'
      /** Set only when the user is a known camera (it becomes a metric label). */
      deviceId?: string
      retryAfterSeconds?: number
    }

export interface AuthSettings {
  maxFailures: number
  windowMs: number
  cacheMs: number
  /** Per-camera allowed source addresses; a camera not listed may push from anywhere. */
  pins: Map<string, Set<string>>
  /** Per-camera Digest HA1, for cameras that cannot log in with Basic. */
  digestHa1?: Map<string, string>
  /** scrypt verifications running at once over all addresses (default: see `defaultVerificationSlots`). */
  maxVerifications?: number
  /** Verifications waiting for a slot before further ones get 429 (default 4 × maxVerifications). */
  maxWaiting?: number
}

const MAX_CACHED = 4096
const MAX_TRACKED_ADDRESSES = 10_000
/** A camera posts one event at a time; two covers an event racing its heartbeat after the cache expired. */
const MAX_VERIFICATIONS_PER_ADDRESS = 2
/** Retry-After when only the concurrency caps refused: a slot frees within one scrypt (~50 ms). */
const BUSY_RETRY_SECONDS = 1

/**
 * scrypt runs on libuv's thread pool (UV_THREADPOOL_SIZE, 4 unless set), which the outbox's and
 * snapshots' fs calls also need: leave at least one thread free, and use no more than the cores.
 */
export function defaultVerificationSlots(): number {
  const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4
  return Math.max(1, Math.min(availableParallelism(), pool - 1))
}

export class CameraAuthenticator {
  private secrets: Map<string, string>
  /** sha256(device, password, stored hash) → when the verification expires; oldest first. */
  private readonly verified = new Map<string, { until: number; user: string }>()
  /** Failed logins per address in its current window; oldest window first. */
  private readonly failures = new Map<string, { since: number; count: number }>()
  /** scrypt verifications running or waiting, per address. Bounded by the slots' queue. */
  private readonly inFlight = new Map<string, number>()
  private readonly slots: Slots
  private readonly digest: DigestVerifier

  constructor(
    devices: readonly DeviceConfig[],
    private readonly settings: AuthSettings,
    private readonly now: () => number = Date.now,
    private readonly verify: (password: string, stored: string) => Promise<boolean> = verifyPassword,
  ) {
    this.secrets = httpSecrets(devices)
    const running = settings.maxVerifications ?? defaultVerificationSlots()
    this.slots = new Slots(running, settings.maxWaiting ?? 4 * running)
    this.digest = new DigestVerifier(REALM, this.digestCameras(), now)
  }

  /**
   * A reloaded device list (SIGHUP). The hold-off counters, the Digest nonce key and replay table
   * carry over, so a reload neither hands a guesser fresh tries nor sends every Digest camera
   * through a new challenge; a remembered login carries over only while its camera's secret is
   * unchanged (a removed camera or a new secret must verify again).
   */
  replaceDevices(devices: readonly DeviceConfig[]): void {
    const next = httpSecrets(devices)
    for (const [key, v] of this.verified) if (next.get(v.user) !== this.secrets.get(v.user)) this.verified.delete(key)
    this.secrets = next
    this.digest.replaceCameras(this.digestCameras())
  }

  /** WWW-Authenticate values for a 401: Digest first when any camera uses it (clients take the first they can). */
  challenges(stale = false): string[] {
    return this.digest.enabled ? [this.digest.challenge(stale), BASIC_CHALLENGE] : [BASIC_CHALLENGE]
  }

  isCamera(deviceId: string): boolean {
    return this.secrets.has(deviceId)
  }

  /** `method` and `path` are the request's, which Digest credentials are bound to. */
  async authenticate(authorization: string | undefined, address: string, method = 'POST', path = '/'): Promise<AuthResult> {
    const now = this.now()
    if (authorization && /^Digest\s/i.test(authorization)) return this.digestLogin(authorization, address, now, method, path)
    const credentials = authorization ? parseBasic(authorization) : undefined
    const secret = credentials ? this.secrets.get(credentials.user) : undefined
    const key = credentials && secret !== undefined ? cacheKey(credentials.user, credentials.password, secret) : undefined
    // Credentials verified a moment ago pass without scrypt, even from an address that is held
    // off: the hold-off is there to stop guessing, not to lock out a camera behind the same NAT.
    // Nor does such a pass clear the address's failures: a guesser behind that NAT would get
    // fresh tries after every heartbeat of the camera.
    const cached = key !== undefined ? this.verified.get(key) : undefined
    if (credentials && cached !== undefined && cached.until > now) {
      const refused = this.pinned(credentials.user, address, now)
      if (refused) return refused
      return { ok: true, deviceId: credentials.user }
    }

    const blocked = this.blockedFor(address, now)
    if (blocked > 0) return { ok: false, status: 429, reason: 'rate_limited', retryAfterSeconds: Math.ceil(blocked / 1000) }
    if (!authorization) return { ok: false, status: 401, reason: 'missing' }
    if (!credentials) return this.failed(address, now, { ok: false, status: 401, reason: 'malformed' })
    const { user, password } = credentials
    if (secret === undefined || key === undefined) return this.failed(address, now, { ok: false, status: 401, reason: 'unknown_camera' })
    const refused = this.pinned(user, address, now)
    if (refused) return refused
    return this.verifyAndRemember(user, password, secret, key, address)
  }

  /**
   * scrypt, with the attempt counted against the address before it runs: the failure is only
   * known ~50 ms later, and 500 guesses sent at once must not all get past the hold-off meanwhile.
   */
  private async verifyAndRemember(user: string, password: string, secret: string, key: string, address: string): Promise<AuthResult> {
    const running = this.inFlight.get(address) ?? 0
    if (running >= MAX_VERIFICATIONS_PER_ADDRESS) return { ok: false, status: 429, reason: 'rate_limited', deviceId: user, retryAfterSeconds: BUSY_RETRY_SECONDS }
    const slot = this.slots.enter()
    if (!slot) return { ok: false, status: 429, reason: 'busy', deviceId: user, retryAfterSeconds: BUSY_RETRY_SECONDS }
    this.inFlight.set(address, running + 1)
    let right: boolean
    try {
      await slot
      right = await this.verify(password, secret)
    } finally {
      this.slots.leave()
      const left = (this.inFlight.get(address) ?? 1) - 1
      if (left > 0) this.inFlight.set(address, left)
      else this.inFlight.delete(address)
    }
    const now = this.now()
    // The device list was reloaded meanwhile and this secret is no longer the camera's: the
    // answer is about a password that no longer counts. Not the client's fault, so not counted.
    if (this.secrets.get(user) !== secret) return { ok: false, status: 401, reason: 'unknown_camera' }
    if (!right) return this.failed(address, now, { ok: false, status: 401, reason: 'bad_password', deviceId: user })
    if (this.settings.cacheMs > 0) {
      this.verified.delete(key)
      if (this.verified.size >= MAX_CACHED) evictOldest(this.verified, (v) => v.until <= now)
      this.verified.set(key, { until: now + this.settings.cacheMs, user })
    }
    return { ok: true, deviceId: user }
  }

  private digestLogin(authorization: string, address: string, now: number, method: string, path: string): AuthResult {
    const blocked = this.blockedFor(address, now)
    if (blocked > 0) return { ok: false, status: 429, reason: 'rate_limited', retryAfterSeconds: Math.ceil(blocked / 1000) }
    const result = this.digest.verify(authorization, method, path)
    if (result.ok) {
      const refused = this.pinned(result.user, address, now)
      if (refused) return refused
      // As for Basic: a success does not clear the address's failures.
      return { ok: true, deviceId: result.user }
    }
    const deviceId = result.reason === 'bad_password' || result.reason === 'stale_nonce' ? result.user : undefined
    // An expired nonce is routine (the camera kept the last one): a fresh challenge, not a failure.
    if (result.reason === 'stale_nonce') return { ok: false, status: 401, reason: 'stale_nonce', deviceId }
    return this.failed(address, now, { ok: false, status: 401, reason: result.reason, deviceId })
  }

  /** A refusal when the camera is pinned to addresses this one is not among. */
  private pinned(user: string, address: string, now: number): AuthResult | undefined {
    const allowed = this.settings.pins.get(user)
    if (!allowed || allowed.has(normaliseAddress(address))) return undefined
    return this.failed(address, now, { ok: false, status: 403, reason: 'address_not_allowed', deviceId: user })
  }

  /** Milliseconds an address must still wait, 0 if it may try. Running verifications count as failures until they are not. */
  private blockedFor(address: string, now: number): number {
    const running = this.inFlight.get(address) ?? 0
    let f = this.failures.get(address)
    if (f && now - f.since >= this.settings.windowMs) {
      this.failures.delete(address)
      f = undefined
    }
    if ((f?.count ?? 0) + running < this.settings.maxFailures) return 0
    // Held off by failures: for the rest of their window. By running attempts only: until they end.
    return f && f.count >= this.settings.maxFailures ? f.since + this.settings.windowMs - now : BUSY_RETRY_SECONDS * 1000
  }

  private failed(address: string, now: number, result: AuthResult): AuthResult {
    const f = this.failures.get(address)
    if (f && now - f.since < this.settings.windowMs) {
      f.count++
      return result
    }
    // Deleted and set again, so the map stays ordered by window start and the oldest go first.
    this.failures.delete(address)
    if (this.failures.size >= MAX_TRACKED_ADDRESSES) evictOldest(this.failures, (e) => now - e.since >= this.settings.windowMs)
    this.failures.set(address, { since: now, count: 1 })
    return result
  }

  private digestCameras(): Map<string, string> {
    return new Map([...(this.settings.digestHa1 ?? new Map<string, string>())].filter(([id]) => this.secrets.has(id)))
  }
}

/** Only HTTP-pushing devices log in here; an MQTT device's password must not open this door. */
function httpSecrets(devices: readonly DeviceConfig[]): Map<string, string> {
  return new Map(devices.flatMap((d) => (d.via === 'http' && d.secret !== undefined ? [[d.id, d.secret] as const] : [])))
}

/**
 * Makes room in a map kept in insertion order, oldest first: drops the expired entries at its
 * front, or else the oldest one. Never clears it all, which would hand every held-off address
 * fresh tries (and every camera a scrypt) at once.
 */
function evictOldest<V>(map: Map<string, V>, expired: (v: V) => boolean): void {
  let dropped = 0
  for (const [k, v] of map) {
    if (!expired(v)) break
    map.delete(k)
    dropped++
  }
  if (dropped === 0) {
    const oldest = map.keys().next()
    if (!oldest.done) map.delete(oldest.value)
  }
}

/** A counting semaphore with a bounded queue: `enter()` gives undefined when both are full. */
class Slots {
  private running = 0
  private readonly waiting: (() => void)[] = []

  constructor(
    private readonly size: number,
    private readonly queue: number,
  ) {}

  enter(): Promise<void> | undefined {
    if (this.running < this.size) {
      this.running++
      return Promise.resolve()
    }
    if (this.waiting.length >= this.queue) return undefined
    return new Promise((resolve) => this.waiting.push(resolve))
  }

  /** Hands the slot straight to the next waiter, if any. */
  leave(): void {
    const next = this.waiting.shift()
    if (next) next()
    else this.running--
  }
}

/** The verification cache's key: a hash, so the map never holds a password. */
function cacheKey(user: string, password: string, secret: string): string {
  return createHash('sha256').update(user).update('\0').update(password).update('\0').update(secret).digest('base64url')
}

/** RFC 7617: `Basic base64(user ":" password)`; the user may not contain a colon. */
export function parseBasic(header: string): { user: string; password: string } | undefined {
  const m = /^Basic[ ]+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header)
  if (!m) return undefined
  const decoded = Buffer.from(m[1], 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon <= 0) return undefined
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}

/** A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d; pins are written as a.b.c.d. */
export function normaliseAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address
}
