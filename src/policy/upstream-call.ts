import type { FastifyInstance } from 'fastify'
import type { Dispatcher } from 'undici'
import type { IncomingHttpHeaders } from 'node:http'
import type { Identity } from '../auth/identity.js'
import { upstreamRequestHeaders } from '../proxy/headers.js'
import { upstreamFailure } from '../proxy/upstream.js'

/** What the upstream answered: its status and body. */
export interface UpstreamAnswer { statusCode: number, text: string }

/** A call the policy makes to the upstream itself: a GET, or a POST of a JSON body. */
export interface UpstreamAsk {
  path: string
  /** The request id sent upstream and named in an error: the caller's, whose call this serves. */
  id: string
  headers?: IncomingHttpHeaders
  /** JSON to POST; without it, a GET. */
  json?: unknown
}

/**
 * A call to the upstream with `identity`'s access token, refreshed and tried once more when the
 * upstream refuses it (401); the answer read whole, asked for plain (it is read here). An upstream
 * that cannot be reached or does not answer in time is the proxy's 502 or 504, as for any call.
 */
export async function upstreamCall (app: FastifyInstance, pool: Dispatcher, identity: Identity, ask: UpstreamAsk): Promise<UpstreamAnswer> {
  const body = ask.json === undefined ? null : JSON.stringify(ask.json)
  const failed = (error: unknown): never => { throw upstreamFailure(error, ask.id) }
  for (const force of [false, true]) {
    const headers = upstreamRequestHeaders(ask.headers ?? {}, {
      accessToken: await app.vault.accessToken(identity.personId, { force }),
      requestId: ask.id,
      quotaProject: app.config.upstream.quotaProject,
    })
    delete headers['accept-encoding']
    if (body !== null) headers['content-type'] = 'application/json'
    // Only the upstream's own failures: a refresh that fails (sign in again) keeps its answer.
    const answer = await pool.request({ method: body === null ? 'GET' : 'POST', path: ask.path, headers, body }).catch(failed)
    if (answer.statusCode !== 401 || force) return { statusCode: answer.statusCode, text: await answer.body.text().catch(failed) }
    await answer.body.dump()
  }
  throw new Error('unreachable')
}
