import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** The method of the request a front proxy asks about: nginx's X-Original-Method, Traefik's X-Forwarded-Method. */
function askedMethod (request: FastifyRequest): string {
  const method = request.headers['x-original-method'] ?? request.headers['x-forwarded-method']
  return typeof method === 'string' ? method.trim().toUpperCase() : 'GET'
}

/**
 * GET /auth/verify, for nginx `auth_request` and Traefik `forwardAuth`: 204 with
 * X-Auth-Request-User/-Email for a browser session, 401 for anything else. Only a session:
 * the front proxy passes the client's request on to the app, so a gateway key or an
 * assertion accepted here would open the app and travel to it. A state-changing request
 * (the front proxy names its method) must come from PUBLIC_URL's origin, else 403: the app
 * behind it gets the same CSRF protection as the gateway's own routes.
 */
export default fp(async function verifyPlugin (app) {
  const ownOrigin = new URL(app.config.publicUrl).origin
  app.get('/auth/verify', async (request, reply) => {
    reply.header('cache-control', 'no-store')
    const identity = await app.identify(request).catch(() => null)
    if (identity?.via !== 'session') return await reply.code(401).send()
    if (!SAFE_METHODS.has(askedMethod(request)) && request.headers.origin !== ownOrigin) return await reply.code(403).send()
    return await reply.code(204)
      .header('x-auth-request-user', identity.sub)
      .header('x-auth-request-email', identity.email)
      .send()
  })
}, { name: 'gemgate-verify', dependencies: ['gemgate-identity', 'gemgate-sessions'] })
