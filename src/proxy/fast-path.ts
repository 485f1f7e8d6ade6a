import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { Identity } from '../auth/identity.js'
import { CLIENT_CLOSED_STATUS } from '../errors.js'
import { markEarlyStart, requestIdOf } from '../ops/early-start.js'

/** Fastify's own handler for a raw request. */
export type RawHandler = (request: IncomingMessage, response: ServerResponse) => void

/**
 * Where the server and the API fast path meet: buildApp creates the server with an empty slot,
 * the Gemini proxy fills it once it is registered. `take` answers true when it took the request;
 * otherwise Fastify serves it. `fastify` is Fastify's handler, for a request handed over later.
 */
export interface FastPathSlot {
  take?: (request: IncomingMessage, response: ServerResponse, fastify: RawHandler) => boolean
}

/** The server settings Fastify would apply itself, were it creating the server. */
export interface ServerTimeouts {
  keepAliveTimeout?: number
  requestTimeout?: number
  connectionTimeout?: number
}

/** An HTTP server that offers each request to the fast path first, then to Fastify. */
export function fastPathServer (slot: FastPathSlot, fastify: RawHandler, timeouts: ServerTimeouts): Server {
  const server = createServer((request, response) => {
    if (slot.take?.(request, response, fastify) !== true) fastify(request, response)
  })
  if (timeouts.keepAliveTimeout !== undefined) server.keepAliveTimeout = timeouts.keepAliveTimeout
  if (timeouts.requestTimeout !== undefined) server.requestTimeout = timeouts.requestTimeout
  server.setTimeout(timeouts.connectionTimeout ?? 0)
  return server
}

/** A model call (`POST /v1beta/models/…:generateContent`): the requests the fast path takes, by its route's pattern. */
const MODEL_CALL = /^\/(v1beta|v1|v1alpha)\/models\/[^/?]/

/**
 * The route pattern Fastify would match for a request the fast path may take, or null. Only
 * model calls without a cookie or an Origin: a session cookie means CSRF checks and stale-cookie
 * clearing, an Origin means CORS answers, and both stay with Fastify's hooks.
 */
export function fastRoute (request: IncomingMessage): string | null {
  if (request.method !== 'POST') return null
  const { headers } = request
  if (headers.cookie !== undefined || headers.origin !== undefined) return null
  const match = MODEL_CALL.exec(request.url ?? '')
  return match === null ? null : `/${match[1]}/*`
}

/**
 * The part of a Fastify request the proxy path reads (proxy/gemini.ts, the credential
 * resolvers, policy admission), over the raw request: no Fastify request object, no hooks.
 */
class FastRequest {
  identity: Identity | null = null
  readonly staleSessionCookie = false
  /** Only requests without a Cookie header take the fast path. */
  readonly cookies: Record<string, string | undefined> = {}
  #log: FastifyBaseLogger | undefined

  constructor (readonly raw: IncomingMessage, readonly id: string, private readonly logger: FastifyBaseLogger) {}

  get method (): string { return this.raw.method ?? 'POST' }
  get url (): string { return this.raw.url ?? '' }
  get headers (): IncomingMessage['headers'] { return this.raw.headers }
  /** Like Fastify's: a child logger carrying the request id, made only when something is logged. */
  get log (): FastifyBaseLogger { return (this.#log ??= this.logger.child({ requestId: this.id })) }
}

/** The part of a Fastify reply the proxy path uses: its own headers, the raw response, and the moment it takes over writing. */
class FastReply {
  readonly #headers: OutgoingHttpHeaders

  constructor (readonly raw: ServerResponse, id: string, private readonly onHijack: () => void) {
    // What the request-log and CORS hooks add to every API answer: the request id, and Vary: Origin.
    this.#headers = { 'x-request-id': id, vary: 'Origin' }
  }

  get statusCode (): number { return this.raw.statusCode }
  header (name: string, value: string): this {
    this.#headers[name.toLowerCase()] = value
    return this
  }

  getHeaders (): OutgoingHttpHeaders { return this.#headers }
  hijack (): this {
    this.onHijack()
    return this
  }
}

/** What the fast path needs from the app. */
export interface FastPathDeps {
  log: FastifyBaseLogger
  /** The proxy's route handler, the same one Fastify calls. */
  proxy: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  /** Writes the access line and counts the request, once its answer has been sent. */
  answered: (request: { id: string, method: string, url: string, identity: Identity | null }, route: string, status: number, durationMs: number) => void
  /** Keeps what the fast path learned for the route handler, which then fails with its error. */
  handOver: (request: IncomingMessage, handed: HandedOver) => void
}

/** What the fast path learned of a request it hands to Fastify: its caller, the headers set for its answer, and the error to answer with. */
export interface HandedOver { identity: Identity | null, headers: OutgoingHttpHeaders, error: unknown }

/**
 * Serves a model call with the proxy's own handler but without Fastify's request and reply
 * objects, routing and hooks (they cost more than the proxying itself). Whatever goes wrong
 * before the gateway starts writing the answer is handed to Fastify with the error, so every
 * error answer, error page and error log line is Fastify's, as on any other route.
 */
export function serveFast (deps: FastPathDeps, raw: IncomingMessage, response: ServerResponse, route: string, fastify: RawHandler): void {
  const startedAt = performance.now()
  const id = requestIdOf(raw)
  const request = new FastRequest(raw, id, deps.log)
  const reply = new FastReply(response, id, () => {
    // 'close' comes after 'finish', or alone when the client hung up: that answer is logged and counted as 499.
    // A response closes once: `on` (not `once`, which wraps the listener each call).
    response.on('close', () => { deps.answered(request, route, response.writableFinished ? response.statusCode : CLIENT_CLOSED_STATUS, performance.now() - startedAt) })
  })
  deps.proxy(request as unknown as FastifyRequest, reply as unknown as FastifyReply).catch((error: unknown) => {
    if (response.headersSent) {
      request.log.error({ err: error }, 'request failed')
      response.destroy()
      return
    }
    markEarlyStart(raw, { id, startedAt })
    deps.handOver(raw, { identity: request.identity, headers: reply.getHeaders(), error })
    fastify(raw, response)
  })
}
