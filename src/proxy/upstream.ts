import { readFile } from 'node:fs/promises'
import { rootCertificates } from 'node:tls'
import type { Readable } from 'node:stream'
import { Pool, type Dispatcher } from 'undici'
import type { Config } from '../config/schema.js'
import { BadGatewayError, GatewayTimeoutError } from '../errors.js'
import { UpstreamExchange } from './exchange.js'

/** How long to wait for a TCP + TLS connection to the upstream. */
export const DEFAULT_CONNECT_TIMEOUT = 10_000
/**
 * Connections to the upstream at most: none. Over HTTP/1.1 every call in flight holds a
 * connection, and a stream holds it for minutes; a cap would queue every other call (short
 * ones included) behind the open streams. Idle connections are closed after the keep-alive.
 */
export const DEFAULT_CONNECTIONS = null
/** How long an idle upstream connection is kept for reuse. */
export const DEFAULT_UPSTREAM_KEEP_ALIVE = 30_000

/** One request to the upstream, as the proxy builds it. */
export interface UpstreamRequest {
  method: Dispatcher.HttpMethod
  path: string
  headers: Record<string, string | string[]>
  body: Buffer | Readable | null
  /** Never resent by undici on a broken connection: a POST to Gemini is not idempotent. */
  idempotent: false
}

/**
 * A connection pool to UPSTREAM_URL's origin only (the path can never name another host), with
 * certificate verification set explicitly: the system CAs plus UPSTREAM_CA_FILE, never
 * `rejectUnauthorized: false`. Headers and the gap between body chunks may each take
 * UPSTREAM_TIMEOUT_SECONDS; there is no cap on a whole stream.
 */
export async function createUpstreamPool (settings: Config['upstream']): Promise<Pool> {
  const extraCa = settings.caFile === undefined ? [] : [await readFile(settings.caFile, 'utf8')]
  const timeout = settings.timeoutSeconds * 1000
  return new Pool(new URL(settings.url).origin, {
    connections: DEFAULT_CONNECTIONS,
    pipelining: 1,
    keepAliveTimeout: DEFAULT_UPSTREAM_KEEP_ALIVE,
    headersTimeout: timeout,
    bodyTimeout: timeout,
    connect: {
      rejectUnauthorized: true,
      ca: [...rootCertificates, ...extraCa],
      timeout: DEFAULT_CONNECT_TIMEOUT,
    },
  })
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT'])

/** The gateway's answer to a failed upstream call: 504 when it timed out, else 502; the request id, no internals. */
export function upstreamFailure (error: unknown, requestId: string): Error {
  const code = (error as { code?: string }).code ?? ''
  if (TIMEOUT_CODES.has(code)) {
    return new GatewayTimeoutError(`The Gemini API did not answer in time (request id ${requestId}).`, { cause: error })
  }
  return new BadGatewayError(`The Gemini API could not be reached (request id ${requestId}).`, { cause: error })
}

/** Starts one request upstream; its answer arrives through the exchange. */
export function dispatchUpstream (pool: Pool, request: UpstreamRequest): UpstreamExchange {
  const exchange = new UpstreamExchange()
  pool.dispatch(request, exchange)
  return exchange
}
