/**
 * HTTP Digest (RFC 7616, MD5, qop=auth) for cameras whose firmware logs in to its alarm host only
 * that way, as camera firmware commonly does. Digest cannot be checked against a scrypt hash, so
 * a camera that uses it has its HA1 = MD5(id ":" realm ":" password) in
 * `inputs.camera.cameras[].digestHa1`; that value is as good as the password, for this realm only.
 *
 * Nonces are stateless (issue time + HMAC under a key made at start), valid for five minutes;
 * the nonce count (nc) must grow per nonce, so a captured request cannot be replayed. The key
 * and the counts live as long as the verifier, which a device reload keeps (replaceCameras).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

export const NONCE_LIFETIME_MS = 5 * 60_000
const MAX_TRACKED_NONCES = 10_000

export type DigestResult =
  | { ok: true; user: string }
  | { ok: false; reason: 'malformed' | 'unknown_camera' | 'bad_password' | 'stale_nonce'; user?: string }

export class DigestVerifier {
  private readonly key = randomBytes(32)
  private readonly opaque = randomBytes(12).toString('base64url')
  /** nonce → highest nc seen with it, and when the nonce was issued; in order of first use. */
  private readonly counts = new Map<string, { nc: number; issuedAt: number }>()

  constructor(
    private readonly realm: string,
    private ha1: ReadonlyMap<string, string>,
    private readonly now: () => number = Date.now,
    private readonly maxNonces = MAX_TRACKED_NONCES,
  ) {}

  /** A reloaded device list: new HA1s, same nonce key and replay table (nonces already out stay good). */
  replaceCameras(ha1: ReadonlyMap<string, string>): void {
    this.ha1 = ha1
  }

  get enabled(): boolean {
    return this.ha1.size > 0
  }

  challenge(stale = false): string {
    const issued = Buffer.alloc(8)
    issued.writeBigUInt64BE(BigInt(this.now()))
    const nonce = Buffer.concat([issued, this.mac(issued)]).toString('base64url')
    return `Digest realm="${this.realm}", qop="auth", algorithm=MD5, nonce="${nonce}", opaque="${this.opaque}"${stale ? ', stale=true' : ''}`
  }

  verify(header: string, method: string, path: string): DigestResult {
    const p = parseDigest(header)
    if (!p) return { ok: false, reason: 'malformed' }
    const { username: user, realm, nonce, uri, response, qop, nc, cnonce } = p
    if (!user || !nonce || !uri || !response || realm !== this.realm) return { ok: false, reason: 'malformed', user }
    if ((p.algorithm ?? 'MD5').toUpperCase() !== 'MD5' || qop !== 'auth' || !nc || !/^[0-9a-f]{8}$/i.test(nc) || !cnonce) return { ok: false, reason: 'malformed', user }
    // The credentials were computed for this request's path, not another one (RFC 7616 3.4.6).
    if (uri !== path) return { ok: false, reason: 'malformed', user }
    const ha1 = this.ha1.get(user)
    if (ha1 === undefined) return { ok: false, reason: 'unknown_camera' }
    const ha2 = md5(`${method}:${uri}`)
    const expected = Buffer.from(md5(`${ha1}:${nonce}:${nc}:${cnonce}:${qop}:${ha2}`))
    const actual = Buffer.from(response.toLowerCase())
    if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) return { ok: false, reason: 'bad_password', user }
    // The password was right; the nonce is not one of ours (a restart changed the key), too old,
    // or already used with this count: stale (RFC 7616 3.3), so the camera retries with a fresh one.
    const issuedAt = this.issuedAt(nonce)
    if (issuedAt === undefined || this.now() - issuedAt > NONCE_LIFETIME_MS) return { ok: false, reason: 'stale_nonce', user }
    const count = parseInt(nc, 16)
    const seen = this.counts.get(nonce)
    if (seen && count <= seen.nc) return { ok: false, reason: 'stale_nonce', user }
    if (seen) seen.nc = count
    else {
      if (this.counts.size >= this.maxNonces) this.forgetExpired()
      this.counts.set(nonce, { nc: count, issuedAt })
    }
    return { ok: true, user }
  }

  /**
   * Only a nonce past its lifetime may be forgotten: it is refused as stale before its count is
   * looked at. Forgetting a live one (as clearing the table did) would let its captured requests
   * be replayed. Should the table still be full of live nonces, the one first used longest ago
   * goes: the table stays bounded, and that nonce is likely the nearest to expiring.
   */
  private forgetExpired(): void {
    const now = this.now()
    for (const [nonce, { issuedAt }] of this.counts) if (now - issuedAt > NONCE_LIFETIME_MS) this.counts.delete(nonce)
    if (this.counts.size >= this.maxNonces) {
      const oldest = this.counts.keys().next()
      if (!oldest.done) this.counts.delete(oldest.value)
    }
  }

  private issuedAt(nonce: string): number | undefined {
    const bytes = Buffer.from(nonce, 'base64url')
    if (bytes.length !== 24) return undefined
    const issued = bytes.subarray(0, 8)
    if (!timingSafeEqual(bytes.subarray(8), this.mac(issued))) return undefined
    return Number(issued.readBigUInt64BE())
  }

  private mac(issued: Buffer): Buffer {
    return createHmac('sha256', this.key).update(issued).digest().subarray(0, 16)
  }
}

/** `Digest k=v, k="v", ...` → its parameters (names lowercased); undefined if it is not Digest. */
export function parseDigest(header: string): Record<string, string> | undefined {
  const m = /^Digest\s+(.+)$/is.exec(header.trim())
  if (!m) return undefined
  const text = m[1]
  const param = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))\s*(?:,\s*|$)/y
  const out: Record<string, string> = {}
  let at = 0
  while (at < text.length) {
    param.lastIndex = at
    const p = param.exec(text)
    if (!p) return undefined
    out[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]
    at = param.lastIndex
  }
  return out
}

export function md5(text: string): string {
  return createHash('md5').update(text).digest('hex')
}
