import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ForbiddenError } from '../errors.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The route answers CORS_ORIGINS (CORS, and the CSRF trust that comes with it): the API
     * routes only. Everything else (/auth/*, the app) trusts PUBLIC_URL's origin alone.
     */
    cors?: boolean
  }
}

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
const ALLOWED_REQUEST_HEADERS = 'authorization, content-type, x-goog-api-key, x-goog-api-client, x-goog-user-project, x-goog-upload-protocol, x-goog-upload-command, x-goog-upload-offset, x-goog-upload-header-content-length, x-goog-upload-header-content-type, x-request-id'
const EXPOSED_HEADERS = 'x-request-id, x-goog-upload-url, x-goog-upload-status, x-goog-upload-chunk-granularity, x-goog-upload-size-received'
/** How long browsers may cache a CORS preflight answer, in seconds. */
export const PREFLIGHT_MAX_AGE = 600

function originOf (value: string | undefined): string | null {
  if (value === undefined || value === '') return null
  try {
    return new URL(value).origin
  } catch {
    return null
  }
}

/**
 * The browser origin a request claims: Origin, else (only when Origin is absent) the origin of
 * Referer. `Origin: null` (sandboxed frames, data: URLs, cross-origin redirects) is an opaque
 * origin that matches nothing: its Referer is the sender's to choose, so it is never consulted.
 */
function requestOrigin (request: FastifyRequest): string | null {
  const origin = request.headers.origin
  if (typeof origin === 'string') return originOf(origin)
  return originOf(request.headers.referer)
}

/**
 * CSRF: a state-changing request that a session cookie authenticates must come from PUBLIC_URL,
 * or, on a route marked `cors` (the API), a configured CORS origin. CORS: only exact configured
 * origins get credentialed access, and only to `cors` routes; nothing is ever reflected. A
 * listed origin is trusted with the person's API calls, never with their keys, sessions or the
 * fronted app's pages.
 */
export default fp(async function csrfPlugin (app) {
  const ownOrigin = new URL(app.config.publicUrl).origin
  const corsOrigins = new Set(app.config.corsOrigins.map((origin) => originOf(origin) ?? origin))

  function allowCors (request: FastifyRequest, reply: FastifyReply): boolean {
    const origin = request.headers.origin
    reply.header('vary', 'Origin')
    if (request.routeOptions.config.cors !== true || typeof origin !== 'string' || !corsOrigins.has(origin)) return false
    reply.header('access-control-allow-origin', origin)
    reply.header('access-control-allow-credentials', 'true')
    reply.header('access-control-expose-headers', EXPOSED_HEADERS)
    return true
  }

  // A callback hook, not an async one: it runs on every request.
  app.addHook('onRequest', (request, reply, done) => {
    const allowed = allowCors(request, reply)
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) {
      if (!allowed) {
        reply.code(403).send()
        return
      }
      reply.code(204)
        .header('access-control-allow-methods', 'GET, POST, PUT, PATCH, DELETE')
        .header('access-control-allow-headers', ALLOWED_REQUEST_HEADERS)
        .header('access-control-max-age', String(PREFLIGHT_MAX_AGE))
        .send()
      return
    }
    if (!UNSAFE_METHODS.has(request.method) || request.cookies[app.cookieNames.session] === undefined) {
      done()
      return
    }
    const origin = requestOrigin(request)
    if (origin === null || (origin !== ownOrigin && !allowed)) {
      done(new ForbiddenError('Cross-site request refused: this request carries the session cookie but not an allowed Origin.'))
      return
    }
    done()
  })
}, { name: 'gemgate-csrf', dependencies: ['gemgate-sessions'] })
