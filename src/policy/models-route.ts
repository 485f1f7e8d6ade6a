import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Dispatcher } from 'undici'
import type { Identity } from '../auth/identity.js'
import { UnauthenticatedError } from '../errors.js'
import { upstreamRequestHeaders } from '../proxy/headers.js'
import { upstreamTarget } from '../proxy/target.js'
import type { Enforcer } from './enforcer.js'
import { modelAllowed } from './rules.js'

/** The API versions whose models.list answers are filtered. */
const VERSIONS = ['/v1beta', '/v1', '/v1alpha'] as const

interface ModelList { models?: Array<{ name?: unknown }>, [other: string]: unknown }

async function fetchList (app: FastifyInstance, pool: Dispatcher, request: FastifyRequest, identity: Identity, force: boolean) {
  const target = upstreamTarget(request.raw.url ?? '')
  const headers = upstreamRequestHeaders(request.headers, {
    accessToken: await app.vault.accessToken(identity.personId, { force }),
    requestId: request.id,
    quotaProject: app.config.upstream.quotaProject,
  })
  // Read here, so asked for plain.
  delete headers['accept-encoding']
  return await pool.request({ method: 'GET', path: target.path + target.search, headers })
}

/**
 * models.list through the policy: the upstream's list with only the models this caller may use
 * (the rule's globs and the key's own). models.get of a disallowed model is refused at admission.
 */
export function modelsListRoutes (app: FastifyInstance, pool: Dispatcher, enforcer: Enforcer): void {
  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const identity = await app.identify(request)
    if (identity === null) throw new UnauthenticatedError(`Not signed in: sign in at ${app.config.publicUrl}/auth/login, or send a gateway key in x-goog-api-key.`)
    let answer = await fetchList(app, pool, request, identity, false)
    if (answer.statusCode === 401) {
      await answer.body.dump()
      answer = await fetchList(app, pool, request, identity, true)
    }
    const text = await answer.body.text()
    reply.code(answer.statusCode).header('content-type', 'application/json; charset=UTF-8').header('cache-control', 'private, no-store')
    if (answer.statusCode !== 200) return await reply.send(text)
    const list = JSON.parse(text) as ModelList
    const globs = enforcer.ruleFor(identity)?.limits.models
    const allowed = (name: unknown): boolean => typeof name === 'string' && modelAllowed(name.replace(/^models\//, ''), globs, identity.keyLimits?.models)
    await reply.send({ ...list, models: (list.models ?? []).filter((model) => allowed(model.name)) })
  }
  for (const version of VERSIONS) app.get(`${version}/models`, handler)
}
