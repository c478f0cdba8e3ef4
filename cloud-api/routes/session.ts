/**
 * Signing in and out, and who am I.
 *
 *   POST   /v1/session   {name, password} → a session token (Bearer) for sessions.ttlHours
 *   DELETE /v1/session   ends the session of the token presented
 *   GET    /v1/me        the caller: name, role, scope (offices, enterprises), departments
 */
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { Ident } from '../../contracts/envelope.ts'
import { Roles, type UserPrincipal } from '../access/principal.ts'
import { ApiError } from '../errors.ts'
import { bearer } from '../plugins/auth.ts'
import { signInRateLimit } from '../plugins/protection.ts'
import type { AppDeps } from '../app.ts'

const SignIn = Type.Object({ name: Ident, password: Type.String({ minLength: 1, maxLength: 256 }) }, { additionalProperties: false })

export function describePrincipal(p: UserPrincipal, deps: AppDeps) {
  const offices = p.offices === 'all' ? deps.org.allOffices().map((o) => o.id) : [...p.offices]
  const known = offices.flatMap((id) => deps.org.office(id) ?? [])
  return {
    name: p.name,
    role: p.role,
    ...(p.anonymous ? { anonymous: true } : {}),
    offices,
    ...(p.enterprises ? { enterprises: [...p.enterprises] } : {}),
    // Names for what the caller may see, so a console shows 汤泉街道 rather than `tangquan`.
    officeNames: Object.fromEntries(known.map((o) => [o.id, o.name])),
    // The clock a console shows times on: the offices' (one district shares one zone).
    ...(known[0] ? { utcOffsetMinutes: known[0].utcOffsetMinutes } : {}),
    enterpriseNames: Object.fromEntries(known.flatMap((o) => o.enterprises.filter((e) => !p.enterprises || p.enterprises.has(e.id)).map((e) => [e.id, e.name]))),
  }
}

export function sessionRoutes(app: FastifyInstance, deps: AppDeps): void {
  const api = app.withTypeProvider<TypeBoxTypeProvider>()
  api.post(
    '/v1/session',
    { config: signInRateLimit, schema: { summary: 'Sign in with name and password', tags: ['session'], security: [], body: SignIn } },
    async (req) => {
      const session = await deps.directory.signIn(req.body.name, req.body.password)
      if (!session) {
        req.log.warn({ code: 'CLOUD_SIGN_IN_FAILED', user: req.body.name }, 'sign-in refused')
        throw new ApiError('CLOUD_UNAUTHENTICATED', 'wrong name or password')
      }
      req.log.info({ user: req.body.name, role: session.principal.role }, 'signed in')
      return { token: session.token, expiresAt: session.expiresAt, user: describePrincipal(session.principal, deps) }
    },
  )

  api.delete(
    '/v1/session',
    { onRequest: deps.auth.requireUser(Roles, 'write'), schema: { summary: 'Sign out (ends this session token)', tags: ['session'] } },
    async (req, reply) => {
      if (!deps.directory.revokeByToken(bearer(req)!)) {
        throw new ApiError('CLOUD_REQUEST_INVALID', 'this is not a session token: an API token is revoked by an admin (DELETE /v1/admin/tokens/:id)')
      }
      return reply.code(204).send()
    },
  )

  api.get('/v1/me', { onRequest: deps.auth.requireUser(Roles), schema: { summary: 'The caller and their scope', tags: ['session'] } }, async (req) => ({
    ...describePrincipal(req.user!, deps),
    departments: deps.config.departments,
  }))
}
