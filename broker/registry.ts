/**
 * Who may connect: the office's devices, each with a scrypt hash of its MQTT password.
 *
 * A reconnect storm (a street's power returns, 300 sensors reconnect at once) would cost ~35 ms of
 * scrypt per device. So a successful check is remembered for `cacheTtlMs` as an HMAC of the
 * password under a key that exists only in this process's memory: a repeat connect with the same
 * password costs one HMAC, and nothing reversible is kept.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { verifyPassword } from '../common/secrets.ts'

export interface DeviceCredential {
  id: string
  /** `scrypt$...`; absent only in anonymous (lab) mode or for a device that uses a client certificate. */
  secret?: string
  /** 'gateway' for a gateway reading from a standalone broker; devices leave it out. */
  role?: 'device' | 'gateway'
}

export type AuthResult =
  | { ok: true; deviceId: string; role: 'device' | 'gateway' }
  | { ok: false; reason: 'unknown_device' | 'bad_password' | 'no_credentials' }

export class DeviceRegistry {
  private readonly secrets = new Map<string, string | undefined>()
  private readonly roles = new Map<string, 'device' | 'gateway'>()
  private readonly verified = new Map<string, { mac: Buffer; until: number }>()
  private readonly cacheKey = randomBytes(32)

  constructor(
    devices: readonly DeviceCredential[],
    private readonly cacheTtlMs = 10 * 60_000,
  ) {
    this.replace(devices)
  }

  /** Swaps in a new device list (config reload); every remembered check is forgotten. */
  replace(devices: readonly DeviceCredential[]): void {
    this.secrets.clear()
    this.roles.clear()
    this.verified.clear()
    for (const d of devices) {
      this.secrets.set(d.id, d.secret)
      this.roles.set(d.id, d.role ?? 'device')
    }
  }

  has(deviceId: string): boolean {
    return this.secrets.has(deviceId)
  }

  roleOf(deviceId: string): 'device' | 'gateway' {
    return this.roles.get(deviceId) ?? 'device'
  }

  async authenticate(username: string | undefined, password: Buffer | undefined): Promise<AuthResult> {
    if (username === undefined || password === undefined) return { ok: false, reason: 'no_credentials' }
    if (!this.secrets.has(username)) return { ok: false, reason: 'unknown_device' }
    const secret = this.secrets.get(username)
    // A device registered without a secret logs in by client certificate only.
    if (secret === undefined) return { ok: false, reason: 'bad_password' }
    const role = this.roleOf(username)
    const text = password.toString('utf8')
    const mac = createHmac('sha256', this.cacheKey).update(username).update('\0').update(text).digest()
    const cached = this.verified.get(username)
    if (cached && cached.until > Date.now() && timingSafeEqual(cached.mac, mac)) return { ok: true, deviceId: username, role }
    if (!(await verifyPassword(text, secret))) return { ok: false, reason: 'bad_password' }
    // The device list may have been replaced while scrypt ran; only cache against the current one.
    if (this.secrets.get(username) === secret) this.verified.set(username, { mac, until: Date.now() + this.cacheTtlMs })
    return { ok: true, deviceId: username, role }
  }
}
