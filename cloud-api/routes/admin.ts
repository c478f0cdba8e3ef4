/**
 * Administration: users, their tokens, and gateways. Admins only. The same operations are
 * available offline through the CLI (`npm run cloud -- user add ...`). Secrets are answered once,
 * when made, and are stored only as hashes.
 *
 *   GET    /v1/admin/users                     POST /v1/admin/users {name, role, scope, password?}
 *   DELETE /v1/admin/users/:name               PUT  /v1/admin/users/:name/password {password}
 *   POST   /v1/admin/users/:name/tokens {label, ttlHours?}  → {id, token}
 *   GET    /v1/admin/tokens                    DELETE /v1/admin/tokens/:id
 *   GET    /v1/admin/gateways                  POST /v1/admin/gateways {id, office} → {token}
 *   DELETE /v1/admin/gateways/:id              POST /v1/admin/gateways/:id/token → {token} (rotate)
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { Ident } from '../../contracts/envelope.ts'
import { Roles } from '../access/principal.ts'
import { UserScopeSchema } from '../config.ts'
import type { AppDeps } from '../app.ts'

const Password = Type.String({ minLength: 10, maxLength: 256, description: 'At least 10 characters' })
const NewUser = Type.Object({ name: Ident, role: Type.Enum([...Roles]), scope: UserScopeSchema, password: Type.Optional(Password) }, { additionalProperties: false })
const NameParams = Type.Object({ name: Ident }, { additionalProperties: false })
const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false })
const NewToken = Type.Object({ label: Type.String({ minLength: 1, maxLength: 64 }), ttlHours: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 24 * 366 })) }, { additionalProperties: false })
const NewGateway = Type.Object({ id: Ident, office: Ident }, { additionalProperties: false })

export function adminRoutes(app: FastifyInstance, deps: AppDeps): void {
  const api = app.withTypeProvider<TypeBoxTypeProvider>()
  const admin = { onRequest: deps.auth.requireUser(['admin'], 'write') }
  const tags = ['admin']
  const audit = (req: FastifyRequest, what: string, target: string) =>
    req.log.info({ code: 'CLOUD_ADMIN', admin: req.user?.name, what, target }, `admin: ${what} ${target}`)

  api.get('/v1/admin/users', { ...admin, schema: { summary: 'Users', tags } }, async () => ({ users: deps.directory.users() }))
  api.post('/v1/admin/users', { ...admin, schema: { summary: 'Add a user', tags, body: NewUser } }, async (req, reply) => {
    const user = await deps.directory.addUser(req.body.name, req.body.role, req.body.scope, req.body.password)
    audit(req, 'user added', user.name)
    return reply.code(201).send({ user })
  })
  api.delete('/v1/admin/users/:name', { ...admin, schema: { summary: 'Remove a user and their tokens', tags, params: NameParams } }, async (req, reply) => {
    deps.directory.removeUser(req.params.name)
    audit(req, 'user removed', req.params.name)
    return reply.code(204).send()
  })
  api.put(
    '/v1/admin/users/:name/password',
    { ...admin, schema: { summary: "Set a user's password (ends their sessions)", tags, params: NameParams, body: Type.Object({ password: Password }, { additionalProperties: false }) } },
    async (req, reply) => {
      await deps.directory.setPassword(req.params.name, req.body.password)
      audit(req, 'password set', req.params.name)
      return reply.code(204).send()
    },
  )
  api.post('/v1/admin/users/:name/tokens', { ...admin, schema: { summary: 'Make an API token for a user (shown once)', tags, params: NameParams, body: NewToken } }, async (req, reply) => {
    const made = deps.directory.createUserToken(req.params.name, req.body.label, req.body.ttlHours)
    audit(req, 'token made', `${req.params.name}/${made.id}`)
    return reply.code(201).send(made)
  })
  api.get('/v1/admin/tokens', { ...admin, schema: { summary: 'API and gateway tokens (never the secrets)', tags } }, async () => ({ tokens: deps.directory.tokens() }))
  api.delete('/v1/admin/tokens/:id', { ...admin, schema: { summary: 'Revoke a token', tags, params: IdParams } }, async (req, reply) => {
    deps.directory.revokeToken(req.params.id)
    audit(req, 'token revoked', req.params.id)
    return reply.code(204).send()
  })
  api.get('/v1/admin/gateways', { ...admin, schema: { summary: 'Gateways allowed to ingest', tags } }, async () => ({ gateways: deps.directory.gateways() }))
  api.post('/v1/admin/gateways', { ...admin, schema: { summary: 'Register a gateway for an office (token shown once)', tags, body: NewGateway } }, async (req, reply) => {
    const made = deps.directory.addGateway(req.body.id, req.body.office)
    audit(req, 'gateway added', req.body.id)
    return reply.code(201).send({ id: req.body.id, office: req.body.office, token: made.token })
  })
  api.delete('/v1/admin/gateways/:id', { ...admin, schema: { summary: 'Remove a gateway (its token stops working)', tags, params: IdParams } }, async (req, reply) => {
    deps.directory.removeGateway(req.params.id)
    deps.field.forgetGateway(req.params.id)
    audit(req, 'gateway removed', req.params.id)
    return reply.code(204).send()
  })
  api.post('/v1/admin/gateways/:id/token', { ...admin, schema: { summary: "Rotate a gateway's token (shown once)", tags, params: IdParams } }, async (req, reply) => {
    const made = deps.directory.rotateGatewayToken(req.params.id)
    audit(req, 'gateway token rotated', req.params.id)
    return reply.code(201).send({ id: req.params.id, token: made.token })
  })
}
