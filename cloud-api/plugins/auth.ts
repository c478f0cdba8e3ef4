/**
 * Bearer-token authentication and role checks, as Fastify onRequest hooks.
 *
 * - 401 (with `WWW-Authenticate: Bearer`) when there is no token or it is unknown or expired;
 * - 403 when the token is valid but its role may not use the route.
 * Scoping within a role (which offices, which enterprises) is the route's job, with the
 * principal attached here.
 */
import type { FastifyRequest } from 'fastify'
import type { Directory } from '../access/directory.ts'
import type { GatewayPrincipal, Role, UserPrincipal } from '../access/principal.ts'
import { ApiError } from '../errors.ts'

declare module 'fastify' {
  interface FastifyRequest {
    gatewayPrincipal?: GatewayPrincipal
    user?: UserPrincipal
  }
}

export function bearer(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization
  if (header) return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1]
  // EventSource cannot set headers; the live stream alone also accepts ?access_token= (RFC 6750 §2.3).
  if (req.routeOptions.url === '/v1/stream') {
    const q = req.query as { access_token?: unknown } | undefined
    if (typeof q?.access_token === 'string') return q.access_token
  }
  return undefined
}

/** The anonymous reader of lab mode (reads.open): sees everything, may not act or administer. */
const LAB_READER: UserPrincipal = { kind: 'user', name: 'anonymous', role: 'admin', offices: 'all', anonymous: true }

export function createAuth(directory: Directory, options: { openReads: boolean }) {
  const requireGateway = async (req: FastifyRequest): Promise<void> => {
    const token = bearer(req)
    if (!token) throw new ApiError('CLOUD_UNAUTHENTICATED', 'a gateway token is required (Authorization: Bearer ...)')
    const p = directory.authenticate(token)
    if (!p) throw new ApiError('CLOUD_UNAUTHENTICATED', 'unknown or expired token')
    if (p.kind !== 'gateway') throw new ApiError('CLOUD_FORBIDDEN', 'only gateways may ingest')
    req.gatewayPrincipal = p
  }

  /**
   * A signed-in user with one of `roles`. `read` routes admit the lab-mode anonymous reader
   * when reads.open is on; acting and administering never do.
   */
  const requireUser =
    (roles: readonly Role[], access: 'read' | 'write' = 'read') =>
    async (req: FastifyRequest): Promise<void> => {
      const token = bearer(req)
      if (!token) {
        if (access === 'read' && options.openReads) {
          req.user = LAB_READER
          return
        }
        throw new ApiError('CLOUD_UNAUTHENTICATED', 'sign in first (POST /v1/session), then send Authorization: Bearer <token>')
      }
      const p = directory.authenticate(token)
      if (!p) throw new ApiError('CLOUD_UNAUTHENTICATED', 'unknown or expired token; sign in again')
      if (p.kind !== 'user') throw new ApiError('CLOUD_FORBIDDEN', 'a gateway token may only ingest')
      if (!roles.includes(p.role)) throw new ApiError('CLOUD_FORBIDDEN', `the ${p.role} role may not use this`)
      req.user = p
    }

  return { requireGateway, requireUser }
}

export type Auth = ReturnType<typeof createAuth>
