/**
 * Bearer-token authentication. Gateways ingest with their own token, bound to one office; readers
 * (center staff tools, dashboards) read with theirs. Only SHA-256 hashes of tokens are configured,
 * and a request's token is hashed and looked up, so no token is ever held or compared in clear.
 * Roles and district scoping arrive with the cloud API issue.
 */
import type { FastifyRequest } from 'fastify'
import { hashToken } from '../../common/secrets.ts'
import type { CloudConfig } from '../config.ts'
import { ApiError } from '../errors.ts'

export interface GatewayPrincipal {
  id: string
  office: string
}

declare module 'fastify' {
  interface FastifyRequest {
    gatewayPrincipal?: GatewayPrincipal
  }
}

function bearer(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization
  if (!header) return undefined
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header)
  return m?.[1]
}

export function createAuth(config: CloudConfig) {
  const gateways = new Map(config.gateways.map((g) => [g.tokenHash, { id: g.id, office: g.office }]))
  const readers = new Set(config.reads.tokens.map((t) => t.tokenHash))
  return {
    requireGateway: async (req: FastifyRequest): Promise<void> => {
      const token = bearer(req)
      if (!token) throw new ApiError('CLOUD_UNAUTHENTICATED', 'a gateway token is required (Authorization: Bearer ...)')
      const gateway = gateways.get(hashToken(token))
      if (!gateway) throw new ApiError('CLOUD_UNAUTHENTICATED', 'unknown gateway token')
      req.gatewayPrincipal = gateway
    },
    requireReader: async (req: FastifyRequest): Promise<void> => {
      if (config.reads.open) return
      const token = bearer(req)
      if (!token) throw new ApiError('CLOUD_UNAUTHENTICATED', 'a reader token is required (Authorization: Bearer ...)')
      if (!readers.has(hashToken(token))) throw new ApiError('CLOUD_UNAUTHENTICATED', 'unknown reader token')
    },
  }
}

export type Auth = ReturnType<typeof createAuth>
