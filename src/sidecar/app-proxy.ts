import type { IncomingMessage } from 'node:http'
import { Pool, type Dispatcher } from 'undici'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Identity } from '../auth/identity.js'
import { identityStillValid } from '../connections/still-valid.js'
import { html, layout, sendPage } from '../auth/pages.js'
import { safeReturnPath } from '../auth/redirect.js'
import { BadGatewayError, BadRequestError, GatewayTimeoutError, notFoundHandler, UnauthenticatedError } from '../errors.js'
import { appRequestHeaders, appResponseHeaders } from './app-headers.js'
import { isGatewayPath, isPublicPath, pathOf, withoutGatewayKeys } from './app-paths.js'
import { assertHandshakeOrigin, assertWebSocketHandshake, isUpgrade, proxyUpgrade, routeUpgrades, type EndTunnel } from './app-websocket.js'

/** How long to wait for a TCP (+ TLS) connection to the app. */
export const DEFAULT_APP_CONNECT_TIMEOUT = 5_000
/** How long an idle connection to the app is kept for reuse. */
export const DEFAULT_APP_KEEP_ALIVE = 30_000
const NO_BODY_STATUSES = new Set([204, 304])
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT'])

/** A browser navigation (asks for a page), as opposed to an API or script call. */
function wantsPage (request: FastifyRequest): boolean {
  return request.headers['sec-fetch-mode'] === 'navigate' || (request.headers.accept ?? '').includes('text/html')
}

function hasBody (raw: IncomingMessage): boolean {
  return raw.headers['transfer-encoding'] !== undefined || Number(raw.headers['content-length'] ?? 0) > 0
}

/** The signed-in person behind a browser session, or null: other credentials and bad cookies mean signed out here. */
async function sessionIdentity (app: FastifyInstance, request: FastifyRequest): Promise<Identity | null> {
  try {
    const identity = await app.identify(request)
    return identity?.via === 'session' ? identity : null
  } catch (error) {
    if ((error as FastifyError).statusCode === 401) return null
    throw error
  }
}

function failurePage (status: number, request: FastifyRequest, publicUrl: string) {
  const title = status === 504 ? 'The app is taking too long' : 'The app is unavailable'
  const message = status === 504
    ? 'The application behind this gateway did not answer in time. Try again in a moment.'
    : 'The application behind this gateway could not be reached. Try again in a moment.'
  return layout(title, html`<section class="card" role="alert"><h1>${title}</h1><p>${message}</p>
<p class="muted">Request id <code>${request.id}</code></p>
<p><a class="button" href="${safeReturnPath(request.raw.url, publicUrl)}">Try again</a></p></section>`)
}

/**
 * Sidecar mode: every path the gateway does not own goes to APP_UPSTREAM_URL for signed-in
 * people, with their identity in X-Forwarded-User/-Email/-Name and a signed X-Gemgate-Assertion.
 * APP_PUBLIC_PATHS are served signed out. Bodies stream both ways; WebSocket handshakes are
 * authenticated the same way and spliced through. Registered last, so every gateway route wins.
 * The path goes to the app exactly as the client sent it: only public paths skip sign-in, and
 * those are only paths with a single unambiguous reading (see app-paths), so the app cannot
 * read a public path where the gateway saw a private one.
 */
export default async function appProxyPlugin (app: FastifyInstance): Promise<void> {
  const { publicUrl } = app.config
  const { upstreamUrl, publicPaths } = app.config.app
  if (upstreamUrl === undefined) return
  const target = new URL(upstreamUrl)
  const basePath = target.pathname === '/' ? '' : target.pathname
  // Until the app has a timeout setting of its own, it shares the Gemini upstream's.
  const timeoutMs = app.config.app.timeoutSeconds * 1000
  const websocketOrigins = new Set([new URL(publicUrl).origin, ...app.config.app.websocketOrigins])
  const pool = new Pool(target.origin, {
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    keepAliveTimeout: DEFAULT_APP_KEEP_ALIVE,
    connect: { timeout: DEFAULT_APP_CONNECT_TIMEOUT },
  })
  app.addHook('onClose', async () => { await pool.destroy() })
  routeUpgrades(app)

  // Bodies stream to the app as they arrive, never parsed.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, _payload, done) => { done(null) })

  function failure (request: FastifyRequest, reply: FastifyReply, error: unknown): FastifyReply {
    // Already the gateway's own verdict (a 101 to a protocol other than WebSocket).
    if (error instanceof BadGatewayError) throw error
    const timedOut = TIMEOUT_CODES.has((error as { code?: string }).code ?? '')
    const failed = timedOut
      ? new GatewayTimeoutError(`The app did not answer in time (request id ${request.id}).`, { cause: error })
      : new BadGatewayError(`The app could not be reached (request id ${request.id}).`, { cause: error })
    if (!wantsPage(request)) throw failed
    request.log.error({ err: failed }, 'app request failed')
    return sendPage(reply, failed.statusCode!, failurePage(failed.statusCode!, request, publicUrl))
  }

  async function forward (request: FastifyRequest, reply: FastifyReply, path: string, headers: Record<string, string | string[]>): Promise<FastifyReply> {
    const abort = new AbortController()
    reply.raw.once('close', () => { if (!reply.raw.writableFinished) abort.abort() })
    let response: Dispatcher.ResponseData
    try {
      response = await pool.request({
        method: request.method as Dispatcher.HttpMethod,
        path,
        headers,
        body: hasBody(request.raw) ? request.raw : null,
        signal: abort.signal,
      })
    } catch (error) {
      return failure(request, reply, error)
    }
    reply.code(response.statusCode).headers(appResponseHeaders(response.headers, target.origin, publicUrl))
    if (request.method === 'HEAD' || NO_BODY_STATUSES.has(response.statusCode)) {
      await response.body.dump()
      return await reply.send()
    }
    return await reply.send(response.body)
  }

  /** An open WebSocket of a signed-in person ends when their sign-in does (sign-out, on any replica). */
  function trackFor (identity: Identity) {
    return (end: EndTunnel) => app.liveConnections.add({ personId: identity.personId, stillValid: async () => await identityStillValid(app, identity), end })
  }

  async function signInFirst (request: FastifyRequest, reply: FastifyReply, rawUrl: string): Promise<FastifyReply> {
    if ((request.method === 'GET' || request.method === 'HEAD') && wantsPage(request) && !isUpgrade(request)) {
      return await reply.header('cache-control', 'no-store').redirect(`/auth/login?rd=${encodeURIComponent(rawUrl)}`, 302)
    }
    throw new UnauthenticatedError(`Not signed in: sign in at ${publicUrl}/auth/login.`)
  }

  app.all('/*', async (request, reply) => {
    const rawUrl = request.raw.url ?? ''
    if (!rawUrl.startsWith('/')) throw new BadRequestError('Request path refused: only origin-form request targets (starting with /) are accepted.')
    const rawPath = pathOf(rawUrl)
    if (isGatewayPath(rawPath)) return notFoundHandler(request, reply)
    if (isUpgrade(request)) assertWebSocketHandshake(request)
    const identity = await sessionIdentity(app, request)
    if (identity === null && !isPublicPath(rawPath, publicPaths)) return await signInFirst(request, reply, rawUrl)
    if (identity !== null && isUpgrade(request)) assertHandshakeOrigin(request, websocketOrigins, publicUrl)
    const headers = appRequestHeaders(request.headers, {
      identity: identity === null ? null : { ...identity, assertion: await app.assertions.issue(identity) },
      requestId: request.id,
      clientIp: request.ip,
      publicUrl,
      upgrade: isUpgrade(request),
    })
    const path = basePath + withoutGatewayKeys(rawUrl)
    if (!isUpgrade(request)) return await forward(request, reply, path, headers)
    try {
      return await proxyUpgrade(request, reply, { url: target, path, headers, timeoutMs, publicUrl, track: identity === null ? undefined : trackFor(identity) })
    } catch (error) {
      return failure(request, reply, error)
    }
  })
}
