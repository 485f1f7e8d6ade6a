import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Dispatcher } from 'undici'
import { UnauthenticatedError } from '../errors.js'
import { upstreamTarget } from '../proxy/target.js'
import { upstreamCall } from './upstream-call.js'

/** The API versions whose models.list answers are filtered. */
const VERSIONS = ['/v1beta', '/v1', '/v1alpha'] as const

interface ModelList { models?: Array<{ name?: unknown }>, [other: string]: unknown }

/**
 * models.list through the policy: the upstream's list with only the models this caller may use
 * (the rule's globs and the key's own). models.get of a disallowed model is refused at admission.
 */
export function modelsListRoutes (app: FastifyInstance, pool: Dispatcher): void {
  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const identity = await app.identify(request)
    if (identity === null) throw new UnauthenticatedError(`Not signed in: sign in at ${app.config.publicUrl}/auth/login, or send a gateway key in x-goog-api-key.`)
    const target = upstreamTarget(request.raw.url ?? '')
    const { statusCode, text } = await upstreamCall(app, pool, identity, { path: target.path + target.search, id: request.id, headers: request.headers })
    reply.code(statusCode).header('content-type', 'application/json; charset=UTF-8').header('cache-control', 'private, no-store')
    if (statusCode !== 200) return await reply.send(text)
    const list = JSON.parse(text) as ModelList
    await reply.send({ ...list, models: (list.models ?? []).filter((model) => typeof model.name === 'string' && app.policy.allows(identity, model.name)) })
  }
  // CORS like every API route: a listed origin may list models too.
  for (const version of VERSIONS) app.get(`${version}/models`, { config: { cors: true } }, handler)
}
