/**
 * The directory: people, gateways and their credentials, from two sources.
 *
 * - The config file may declare users and gateways with hashes (infrastructure as code). Those
 *   cannot be changed at run time.
 * - The center database holds users, gateways and tokens made with the CLI or the admin API.
 *
 * Secrets are stored only as hashes: passwords with scrypt (chosen by people), tokens with one
 * SHA-256 (32 random bytes, nothing to brute-force, and cheap on every request). A token is
 * printed once when made and never again.
 */
import { randomBytes } from 'node:crypto'
import type { CloudConfig, UserConfig } from '../config.ts'
import type { CenterDb } from '../center/db.ts'
import { hashPassword, hashToken, newToken, verifyPassword } from '../../common/secrets.ts'
import { Ident } from '../../contracts/envelope.ts'
import { checker } from '../../contracts/validate.ts'
import { ApiError } from '../errors.ts'
import type { Organization } from './organization.ts'
import { userPrincipal, type GatewayPrincipal, type Principal, type Role, type ScopeSpec, type UserPrincipal } from './principal.ts'

export interface UserRecord {
  name: string
  role: Role
  scope: ScopeSpec
  source: 'config' | 'database'
  createdAt?: string
  hasPassword: boolean
}

export interface TokenRecord {
  id: string
  owner: string
  ownerKind: 'user' | 'gateway'
  kind: 'session' | 'api' | 'gateway'
  label?: string
  createdAt: string
  expiresAt?: string
}

export interface GatewayRecord {
  id: string
  office: string
  source: 'config' | 'database'
}

interface TokenRow {
  id: string
  owner_kind: 'user' | 'gateway'
  owner: string
  kind: TokenRecord['kind']
  label: string | null
  created_at: number
  expires_at: number | null
}

/** The config and the center database disagree about who someone is; the API does not start. */
export class DirectoryConflictError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'DirectoryConflictError'
  }
}

/** A scrypt hash of nothing anyone can type, so an unknown user costs the same time as a wrong password. */
const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'

export class Directory {
  private readonly configGateways: Map<string, GatewayPrincipal>
  private readonly configUsers: Map<string, UserConfig>
  private readonly configUserTokens: Map<string, UserConfig>
  private readonly stmt

  constructor(
    private readonly db: CenterDb,
    private readonly config: Pick<CloudConfig, 'gateways' | 'users' | 'sessions'>,
    private readonly org: Organization,
    private readonly now: () => number = Date.now,
  ) {
    this.configGateways = new Map(config.gateways.map((g) => [g.tokenHash, { kind: 'gateway', id: g.id, office: g.office }]))
    this.configUsers = new Map(config.users.map((u) => [u.name, u]))
    this.configUserTokens = new Map(config.users.flatMap((u) => (u.tokenHashes ?? []).map((h) => [h, u] as const)))
    // A config user and a database user of one name would share the database user's tokens and
    // sessions (config wins on lookup): refuse to start rather than let one become the other.
    const clash = db
      .prepare<[], { name: string }>('SELECT name FROM users')
      .all()
      .filter((u) => this.configUsers.has(u.name))
    if (clash.length > 0) {
      throw new DirectoryConflictError(
        `users ${clash.map((u) => `"${u.name}"`).join(', ')} are declared in the config file and also exist in the center database; remove them from one (npm run cloud -- user remove NAME)`,
      )
    }
    // The same for gateways: two gateways of one id number their envelopes alike (`id:seq`), so
    // the store would take one's data as the other's duplicates, and the database one could be
    // neither rotated nor removed (config wins on lookup).
    const declared = new Set(config.gateways.map((g) => g.id))
    const twice = db
      .prepare<[], { id: string }>('SELECT id FROM gateways')
      .all()
      .filter((g) => declared.has(g.id))
    if (twice.length > 0) {
      throw new DirectoryConflictError(
        `gateways ${twice.map((g) => `"${g.id}"`).join(', ')} are declared in the config file and also exist in the center database; remove them from one (npm run cloud -- gateway remove ID, before declaring it in the file)`,
      )
    }
    this.stmt = {
      tokenByHash: db.prepare<[string], TokenRow>('SELECT * FROM tokens WHERE hash = ?'),
      user: db.prepare<[string], { name: string; role: Role; scope: string; password_hash: string | null; created_at: number; disabled: number }>(
        'SELECT * FROM users WHERE name = ?',
      ),
      gateway: db.prepare<[string], { id: string; office: string }>('SELECT id, office FROM gateways WHERE id = ?'),
      insertToken: db.prepare(
        'INSERT INTO tokens (id, hash, owner_kind, owner, kind, label, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      deleteExpired: db.prepare('DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at < ?'),
    }
  }

  /** The principal a bearer token stands for, or undefined. */
  authenticate(token: string): Principal | undefined {
    const hash = hashToken(token)
    const gateway = this.configGateways.get(hash)
    if (gateway) return gateway
    const declared = this.configUserTokens.get(hash)
    if (declared) return userPrincipal(declared.name, declared.role, declared.scope, this.org)
    const row = this.stmt.tokenByHash.get(hash)
    if (!row || (row.expires_at !== null && row.expires_at <= this.now())) return undefined
    if (row.owner_kind === 'gateway') {
      const g = this.stmt.gateway.get(row.owner)
      return g ? { kind: 'gateway', id: g.id, office: g.office } : undefined
    }
    return this.principalOf(row.owner)
  }

  /** A user's principal by name (config first), or undefined when unknown or disabled. */
  principalOf(name: string): UserPrincipal | undefined {
    const declared = this.configUsers.get(name)
    if (declared) return userPrincipal(declared.name, declared.role, declared.scope, this.org)
    const u = this.stmt.user.get(name)
    if (!u || u.disabled) return undefined
    return userPrincipal(u.name, u.role, JSON.parse(u.scope) as ScopeSpec, this.org)
  }

  /** Password sign-in: a session token valid for `sessions.ttlHours`. */
  async signIn(name: string, password: string): Promise<{ token: string; expiresAt: string; principal: UserPrincipal } | undefined> {
    const declared = this.configUsers.get(name)
    const stored = declared ? declared.passwordHash : this.stmt.user.get(name)?.password_hash
    const ok = await verifyPassword(password, stored ?? DUMMY_HASH)
    const principal = ok && stored ? this.principalOf(name) : undefined
    if (!principal) return undefined
    const expires = this.now() + Math.round(this.config.sessions.ttlHours * 3_600_000)
    const token = this.issue('user', name, 'session', 'sign-in', expires)
    this.stmt.deleteExpired.run(this.now())
    return { token, expiresAt: new Date(expires).toISOString(), principal }
  }

  /** Ends the session of this token (sign-out); false when the token is not a session's. */
  revokeByToken(token: string): boolean {
    return this.db.prepare("DELETE FROM tokens WHERE hash = ? AND kind = 'session'").run(hashToken(token)).changes > 0
  }

  // ---- users

  async addUser(name: string, role: Role, scope: ScopeSpec, password?: string): Promise<UserRecord> {
    checkIdent('name', name)
    if (this.configUsers.has(name) || this.stmt.user.get(name)) throw new ApiError('CLOUD_CONFLICT', `user "${name}" exists`)
    this.checkScope(role, scope)
    const passwordHash = password === undefined ? null : await hashPassword(password)
    this.db
      .prepare('INSERT INTO users (name, role, scope, password_hash, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(name, role, JSON.stringify(scope), passwordHash, this.now())
    return this.user(name)!
  }

  async setPassword(name: string, password: string): Promise<void> {
    this.mutableUser(name)
    this.db.prepare('UPDATE users SET password_hash = ? WHERE name = ?').run(await hashPassword(password), name)
    // A new password ends every session made with the old one.
    this.db.prepare("DELETE FROM tokens WHERE owner_kind = 'user' AND owner = ? AND kind = 'session'").run(name)
  }

  removeUser(name: string): void {
    this.mutableUser(name)
    this.db.transaction(() => {
      this.db.prepare("DELETE FROM tokens WHERE owner_kind = 'user' AND owner = ?").run(name)
      this.db.prepare('DELETE FROM users WHERE name = ?').run(name)
    })()
  }

  user(name: string): UserRecord | undefined {
    const declared = this.configUsers.get(name)
    if (declared) return { name, role: declared.role, scope: declared.scope, source: 'config', hasPassword: declared.passwordHash !== undefined }
    const u = this.stmt.user.get(name)
    if (!u) return undefined
    return {
      name: u.name,
      role: u.role,
      scope: JSON.parse(u.scope) as ScopeSpec,
      source: 'database',
      createdAt: new Date(u.created_at).toISOString(),
      hasPassword: u.password_hash !== null,
    }
  }

  users(): UserRecord[] {
    const names = this.db.prepare<[], { name: string }>('SELECT name FROM users ORDER BY name').all().map((r) => r.name)
    return [...this.configUsers.keys(), ...names].map((n) => this.user(n)!)
  }

  // ---- tokens

  /** A long-lived API token for a user (scripts, dashboards). Returned once. */
  createUserToken(name: string, label: string, ttlHours?: number): { id: string; token: string } {
    if (!this.user(name)) throw new ApiError('CLOUD_NOT_FOUND', `no user "${name}"`)
    if (ttlHours !== undefined && !(Number.isFinite(ttlHours) && ttlHours > 0)) {
      throw new ApiError('CLOUD_REQUEST_INVALID', 'ttlHours must be a number of hours above 0', [{ path: '/ttlHours', message: 'must be > 0' }])
    }
    const expires = ttlHours === undefined ? null : this.now() + Math.round(ttlHours * 3_600_000)
    const token = this.issue('user', name, 'api', label, expires)
    return { id: this.tokenId(token), token }
  }

  tokens(owner?: string): TokenRecord[] {
    const rows = owner
      ? this.db.prepare<[string], TokenRow>('SELECT * FROM tokens WHERE owner = ? ORDER BY created_at').all(owner)
      : this.db.prepare<[], TokenRow>("SELECT * FROM tokens WHERE kind <> 'session' ORDER BY created_at").all()
    return rows.map((r) => ({
      id: r.id,
      owner: r.owner,
      ownerKind: r.owner_kind,
      kind: r.kind,
      ...(r.label !== null ? { label: r.label } : {}),
      createdAt: new Date(r.created_at).toISOString(),
      ...(r.expires_at !== null ? { expiresAt: new Date(r.expires_at).toISOString() } : {}),
    }))
  }

  revokeToken(id: string): void {
    if (this.db.prepare('DELETE FROM tokens WHERE id = ?').run(id).changes === 0) throw new ApiError('CLOUD_NOT_FOUND', `no token "${id}"`)
  }

  // ---- gateways

  /** Registers a gateway for an office and returns its ingest token (shown once). */
  addGateway(id: string, office: string): { token: string } {
    checkIdent('id', id)
    if (!this.org.office(office)) throw new ApiError('CLOUD_REQUEST_INVALID', `no office "${office}" in the organization`, [{ path: '/office', message: 'unknown office' }])
    if (this.gateway(id)) throw new ApiError('CLOUD_CONFLICT', `gateway "${id}" exists`)
    this.db.prepare('INSERT INTO gateways (id, office, created_at) VALUES (?, ?, ?)').run(id, office, this.now())
    return { token: this.issue('gateway', id, 'gateway', 'ingest', null) }
  }

  /** A new token for a database gateway; the old ones stop working at once. */
  rotateGatewayToken(id: string): { token: string } {
    const g = this.gateway(id)
    if (!g) throw new ApiError('CLOUD_NOT_FOUND', `no gateway "${id}"`)
    if (g.source === 'config') throw new ApiError('CLOUD_CONFLICT', `gateway "${id}" is declared in the config file; change it there`)
    return this.db.transaction(() => {
      this.db.prepare("DELETE FROM tokens WHERE owner_kind = 'gateway' AND owner = ?").run(id)
      return { token: this.issue('gateway', id, 'gateway', 'ingest', null) }
    })()
  }

  removeGateway(id: string): void {
    const g = this.gateway(id)
    if (!g) throw new ApiError('CLOUD_NOT_FOUND', `no gateway "${id}"`)
    if (g.source === 'config') throw new ApiError('CLOUD_CONFLICT', `gateway "${id}" is declared in the config file; remove it there`)
    this.db.transaction(() => {
      this.db.prepare("DELETE FROM tokens WHERE owner_kind = 'gateway' AND owner = ?").run(id)
      this.db.prepare('DELETE FROM gateways WHERE id = ?').run(id)
      // Its health too: a gateway added again under this id, perhaps for another office and
      // district, starts without the old one's counters (which that district must not see).
      this.db.prepare('DELETE FROM gateway_health WHERE id = ?').run(id)
    })()
  }

  gateway(id: string): GatewayRecord | undefined {
    const declared = this.config.gateways.find((g) => g.id === id)
    if (declared) return { id, office: declared.office, source: 'config' }
    const g = this.stmt.gateway.get(id)
    return g ? { ...g, source: 'database' } : undefined
  }

  gateways(): GatewayRecord[] {
    const rows = this.db.prepare<[], { id: string; office: string }>('SELECT id, office FROM gateways ORDER BY id').all()
    return [...this.config.gateways.map((g) => ({ id: g.id, office: g.office, source: 'config' as const })), ...rows.map((r) => ({ ...r, source: 'database' as const }))]
  }

  // ---- internals

  private issue(ownerKind: 'user' | 'gateway', owner: string, kind: TokenRecord['kind'], label: string, expiresAt: number | null): string {
    const token = newToken()
    this.stmt.insertToken.run(this.tokenId(token), hashToken(token), ownerKind, owner, kind, label, this.now(), expiresAt)
    return token
  }

  /** A short public id for managing a token, derived from its hash (never from the token itself). */
  private tokenId(token: string): string {
    return 'tok_' + hashToken(token).slice(7, 19)
  }

  private mutableUser(name: string): void {
    if (this.configUsers.has(name)) throw new ApiError('CLOUD_CONFLICT', `user "${name}" is declared in the config file; change it there`)
    if (!this.stmt.user.get(name)) throw new ApiError('CLOUD_NOT_FOUND', `no user "${name}"`)
  }

  private checkScope(role: Role, scope: ScopeSpec): void {
    const bad = (path: string, message: string) => new ApiError('CLOUD_REQUEST_INVALID', `bad scope for role ${role}: ${message}`, [{ path, message }])
    if (role === 'center' && (!scope.district || !this.org.hasDistrict(scope.district))) throw bad('/scope/district', 'center staff need a known district')
    if (role === 'supervisor') {
      if (!scope.offices?.length) throw bad('/scope/offices', 'supervisors need at least one office')
      for (const o of scope.offices) if (!this.org.office(o)) throw bad('/scope/offices', `unknown office "${o}"`)
    }
    if (role === 'inspector') {
      if (!scope.enterprises?.length) throw bad('/scope/enterprises', 'inspectors need at least one enterprise')
      for (const e of scope.enterprises) if (!this.org.officeOfEnterprise(e)) throw bad('/scope/enterprises', `unknown enterprise "${e}"`)
    }
  }
}

const ident = checker<string>(Ident)
const isIdent = (value: string): boolean => ident.check(value)

/** Names and ids as the config file's: the API's schemas check them, the CLI comes here directly. */
function checkIdent(field: string, value: string): void {
  if (!isIdent(value)) {
    throw new ApiError('CLOUD_REQUEST_INVALID', `${field} "${value}" is not an id: letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit`, [
      { path: `/${field}`, message: 'must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$ (at most 64)' },
    ])
  }
}

/** A random, readable password for the CLI to suggest. */
export function suggestPassword(): string {
  return randomBytes(12).toString('base64url')
}
