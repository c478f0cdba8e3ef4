/**
 * Who is pushing: HTTP Basic (RFC 7617) with the camera's device id as user and its password,
 * checked against the device's scrypt `secret`. scrypt is slow on purpose (~50 ms), and a camera
 * posts many events a minute, so a verified login is remembered for a while under a hash of the
 * credentials; failures are never remembered, and an address that keeps failing is held off
 * before scrypt runs again (a cheap brute-force and CPU-exhaustion guard).
 *
 * Digest (RFC 7616) cannot be checked against a scrypt hash; a camera that can only do Digest
 * is given its HA1 in the input's config (digest.ts), and is held off and pinned the same way.
 */
import { createHash } from 'node:crypto'
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
      reason: 'missing' | 'malformed' | 'unknown_camera' | 'bad_password' | 'stale_nonce' | 'address_not_allowed' | 'rate_limited'
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
}

const MAX_CACHED = 4096
const MAX_TRACKED_ADDRESSES = 10_000

export class CameraAuthenticator {
  private readonly secrets: Map<string, string>
  /** sha256(device, password, stored hash) → when the verification expires. */
  private readonly verified = new Map<string, number>()
  private readonly failures = new Map<string, { since: number; count: number }>()
  private readonly digest: DigestVerifier

  constructor(
    devices: readonly DeviceConfig[],
    private readonly settings: AuthSettings,
    private readonly now: () => number = Date.now,
    private readonly verify: (password: string, stored: string) => Promise<boolean> = verifyPassword,
  ) {
    // Only HTTP-pushing devices log in here; an MQTT device's password must not open this door.
    this.secrets = new Map(devices.flatMap((d) => (d.via === 'http' && d.secret !== undefined ? [[d.id, d.secret] as const] : [])))
    const ha1 = [...(settings.digestHa1 ?? new Map<string, string>())].filter(([id]) => this.secrets.has(id))
    this.digest = new DigestVerifier(REALM, new Map(ha1), now)
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
    const until = key !== undefined ? this.verified.get(key) : undefined
    if (credentials && until !== undefined && until > now) {
      const refused = this.pinned(credentials.user, address, now)
      if (refused) return refused
      this.failures.delete(address)
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
    if (!(await this.verify(password, secret))) return this.failed(address, now, { ok: false, status: 401, reason: 'bad_password', deviceId: user })
    if (this.settings.cacheMs > 0) {
      if (this.verified.size >= MAX_CACHED) this.verified.clear()
      this.verified.set(key, now + this.settings.cacheMs)
    }
    this.failures.delete(address)
    return { ok: true, deviceId: user }
  }

  private digestLogin(authorization: string, address: string, now: number, method: string, path: string): AuthResult {
    const blocked = this.blockedFor(address, now)
    if (blocked > 0) return { ok: false, status: 429, reason: 'rate_limited', retryAfterSeconds: Math.ceil(blocked / 1000) }
    const result = this.digest.verify(authorization, method, path)
    if (result.ok) {
      const refused = this.pinned(result.user, address, now)
      if (refused) return refused
      this.failures.delete(address)
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

  /** Milliseconds an address must still wait, 0 if it may try. */
  private blockedFor(address: string, now: number): number {
    const f = this.failures.get(address)
    if (!f) return 0
    if (now - f.since >= this.settings.windowMs) {
      this.failures.delete(address)
      return 0
    }
    return f.count >= this.settings.maxFailures ? f.since + this.settings.windowMs - now : 0
  }

  private failed(address: string, now: number, result: AuthResult): AuthResult {
    const f = this.failures.get(address)
    if (f && now - f.since < this.settings.windowMs) f.count++
    else {
      if (this.failures.size >= MAX_TRACKED_ADDRESSES) this.failures.clear()
      this.failures.set(address, { since: now, count: 1 })
    }
    return result
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
