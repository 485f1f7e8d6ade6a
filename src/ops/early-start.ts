import { randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'

/**
 * What the API fast path (src/proxy/fast-path.ts) fixed about a request before Fastify saw it,
 * when it hands the request over: the request id it already sent upstream, and when the request
 * began (Fastify's own clock would start only at the hand-over, after the upstream call).
 */
export interface EarlyStart {
  id: string
  /** performance.now() when the request arrived. */
  startedAt: number
}

/** Kept beside the request, not on it: a property added to Node's request objects would change their shape for every request. */
const started = new WeakMap<IncomingMessage, EarlyStart>()
const REQUEST_ID = /^[\w.:-]{1,128}$/

/** Marks a raw request as begun by the fast path, before it is handed to Fastify. */
export function markEarlyStart (request: IncomingMessage, start: EarlyStart): void {
  started.set(request, start)
}

/**
 * Ids made here are UUIDs (version 8, RFC 9562's own format): 74 random bits drawn once per
 * process, so two replicas' ids do not collide, and a count. Request ids are not secrets: a
 * random draw per request (randomUUID) cost about 1% of a proxied call.
 */
const RANDOM = randomBytes(10).toString('hex')
const ID_PREFIX = `${RANDOM.slice(0, 8)}-${RANDOM.slice(8, 12)}-8${RANDOM.slice(12, 15)}-${(8 | (parseInt(RANDOM[15]!, 16) & 3)).toString(16)}${RANDOM.slice(16, 19)}-`
let made = 0

function newRequestId (): string {
  made++
  return ID_PREFIX + made.toString(16).padStart(12, '0')
}

/** The request's id: the one the fast path gave it, else the client's x-request-id when well formed, else a new one. */
export function requestIdOf (request: IncomingMessage): string {
  const early = started.get(request)
  if (early !== undefined) return early.id
  const given = request.headers['x-request-id']
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : newRequestId()
}

/** Milliseconds since the request began: since the fast path took it, else Fastify's own figure. */
export function elapsedMs (request: IncomingMessage, fastifyElapsedMs: number): number {
  const early = started.get(request)
  return early === undefined ? fastifyElapsedMs : performance.now() - early.startedAt
}
