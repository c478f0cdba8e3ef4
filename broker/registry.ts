/**
 * Who may connect: the office's devices, each with a scrypt hash of its MQTT password.
 *
 * A reconnect storm (a street's power returns, 300 sensors reconnect at once) would cost ~35 ms of
 * scrypt per device. So a successful check is remembered for `cacheTtlMs` as an HMAC of the
 * password under a key that exists only in this process's memory: a repeat connect with the same
 * password costs one HMAC, and nothing reversible is kept.
 *
 * The first storm after a restart has nothing cached. scrypt checks then wait in a queue here, a
 * few at a time, rather than all at once on libuv's pool, so that a device which gave up waiting
 * (closed its socket after its connect timeout) is skipped instead of costing its 35 ms anyway.
 * Without that, a queue longer than the devices' timeout keeps every later device timing out too.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { availableParallelism } from 'node:os'
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
  | { ok: false; reason: 'unknown_device' | 'bad_password' | 'no_credentials' | 'abandoned' }

export class DeviceRegistry {
  private readonly secrets = new Map<string, string | undefined>()
  private readonly roles = new Map<string, 'device' | 'gateway'>()
  private readonly verified = new Map<string, { mac: Buffer; until: number }>()
  private readonly cacheKey = randomBytes(32)
  private readonly waiting: (() => void)[] = []
  private checking = 0

  constructor(
    devices: readonly DeviceCredential[],
    private readonly cacheTtlMs = 10 * 60_000,
    private readonly maxConcurrentChecks = availableParallelism(),
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

  /** `stillWanted` says whether the client is still there to be answered (its socket is open). */
  async authenticate(username: string | undefined, password: Buffer | undefined, stillWanted: () => boolean = () => true): Promise<AuthResult> {
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
    await this.slot()
    let verified: boolean
    try {
      if (!stillWanted()) return { ok: false, reason: 'abandoned' }
      verified = await verifyPassword(text, secret)
    } finally {
      this.release()
    }
    if (!verified) return { ok: false, reason: 'bad_password' }
    // The device list may have been replaced while scrypt ran; only cache against the current one.
    if (this.secrets.get(username) === secret) this.verified.set(username, { mac, until: Date.now() + this.cacheTtlMs })
    return { ok: true, deviceId: username, role }
  }

  private slot(): Promise<void> {
    if (this.checking < this.maxConcurrentChecks) {
      this.checking++
      return Promise.resolve()
    }
    return new Promise((resolve) => this.waiting.push(resolve))
  }

  /** Hands the slot straight to the next waiting check (first come, first served). */
  private release(): void {
    const next = this.waiting.shift()
    if (next) next()
    else this.checking--
  }
}
