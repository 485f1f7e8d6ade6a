import { readFile } from 'node:fs/promises'
import { createSecureContext, rootCertificates } from 'node:tls'
import type { Readable } from 'node:stream'
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { buildConnector, Client, type Dispatcher } from 'undici'
import type { Config } from '../config/schema.js'
import { BadGatewayError, GatewayTimeoutError } from '../errors.js'
import { UpstreamExchange } from './exchange.js'
import { UpstreamPool } from './upstream-pool.js'

/** How long to wait for a TCP + TLS connection to the upstream. */
export const DEFAULT_CONNECT_TIMEOUT = 10_000
/**
 * Connections to the upstream at most: none. Over HTTP/1.1 every call in flight holds a
 * connection, and a stream holds it for minutes; a cap would queue every other call (short
 * ones included) behind the open streams. Idle connections are closed after the keep-alive,
 * and beyond DEFAULT_IDLE_CONNECTIONS at once (see UpstreamPool).
 */
export const DEFAULT_CONNECTIONS = null
/** How long an idle upstream connection is kept for reuse. */
export const DEFAULT_UPSTREAM_KEEP_ALIVE = 30_000
/**
 * Streams one HTTP/2 connection carries at once (Google announces 100): a burst of 10,000
 * streams needs about a hundred connections instead of 10,000 sockets.
 */
export const DEFAULT_H2_STREAMS_PER_CONNECTION = 100

/** One request to the upstream, as the proxy builds it. */
export interface UpstreamRequest {
  method: Dispatcher.HttpMethod
  path: string
  headers: Record<string, string | string[]>
  body: Buffer | Readable | null
  /**
   * Always true, and not a promise that the call is safe to repeat: undici's core never resends
   * a request (no retry interceptor is installed here). The flag only decides whether a call
   * may share a connection with others in flight: over HTTP/2 a stream among up to
   * DEFAULT_H2_STREAMS_PER_CONNECTION (false would open a connection per call in flight);
   * over HTTP/1.1 undici sends one call per connection at a time whatever it says.
   */
  idempotent: true
}

/**
 * A connection pool to UPSTREAM_URL's origin only (the path can never name another host), with
 * certificate verification set explicitly: the system CAs plus UPSTREAM_CA_FILE, never
 * `rejectUnauthorized: false`. Headers and the gap between body chunks may each take
 * UPSTREAM_TIMEOUT_SECONDS; there is no cap on a whole stream. With UPSTREAM_HTTP2 (the
 * default) an https upstream that offers h2 by ALPN is spoken to over HTTP/2; one that does not
 * (and any http:// upstream) gets HTTP/1.1.
 */
export async function createUpstreamPool (settings: Config['upstream']): Promise<UpstreamPool> {
  const extraCa = settings.caFile === undefined ? [] : [await readFile(settings.caFile, 'utf8')]
  const timeout = settings.timeoutSeconds * 1000
  const connector = buildConnector({
    rejectUnauthorized: true,
    // One context for every connection: given `ca` instead, each TLS connect would parse the
    // hundred-odd root certificates again (about 1 MB and 10 ms each).
    secureContext: createSecureContext({ ca: [...rootCertificates, ...extraCa] }),
    timeout: DEFAULT_CONNECT_TIMEOUT,
    allowH2: settings.http2,
  })
  const streams = new StreamsPerConnection()
  const origin = new URL(settings.url).origin
  const options: Client.Options = {
    allowH2: settings.http2,
    maxConcurrentStreams: DEFAULT_H2_STREAMS_PER_CONNECTION,
    keepAliveTimeout: DEFAULT_UPSTREAM_KEEP_ALIVE,
    headersTimeout: timeout,
    bodyTimeout: timeout,
  }
  return new UpstreamPool(() => streams.client(origin, options, connector))
}

/**
 * How many calls undici may put on one connection: one over HTTP/1.1 (never pipelined: a call
 * behind a minutes-long stream would wait for it), DEFAULT_H2_STREAMS_PER_CONNECTION over
 * HTTP/2. Known only once a connection negotiated its protocol by ALPN, so each client is set
 * when it connects; once the upstream was seen to speak h2, new clients start at the h2 figure,
 * so a burst does not open a connection per call while the first handshakes are under way.
 */
class StreamsPerConnection {
  #speaksH2 = false

  client (origin: URL | string, options: Client.Options, connector: buildConnector.connector): Client {
    const client: Client = new Client(origin, {
      ...options,
      pipelining: this.#speaksH2 ? DEFAULT_H2_STREAMS_PER_CONNECTION : 1,
      connect: (connectOptions, callback) => connector(connectOptions, (error, socket) => {
        if (error !== null) {
          callback(error, null)
          return
        }
        const h2 = (socket as TLSSocket).alpnProtocol === 'h2'
        this.#speaksH2 = h2
        client.pipelining = h2 ? DEFAULT_H2_STREAMS_PER_CONNECTION : 1
        callback(null, socket as Socket)
      }),
    })
    return client
  }
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
export function dispatchUpstream (pool: Dispatcher, request: UpstreamRequest): UpstreamExchange {
  const exchange = new UpstreamExchange()
  pool.dispatch(request, exchange)
  return exchange
}
