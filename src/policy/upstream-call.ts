import type { FastifyInstance } from 'fastify'
import type { Dispatcher } from 'undici'
import type { IncomingHttpHeaders } from 'node:http'
import type { Identity } from '../auth/identity.js'
import { BadRequestError, ForbiddenError, NotFoundError, ServiceUnavailableError, withExtras } from '../errors.js'
import { upstreamRequestHeaders } from '../proxy/headers.js'
import { upstreamFailure } from '../proxy/upstream.js'
import { jsonObject } from './request-body.js'

/** What the upstream answered: its status and body. */
export interface UpstreamAnswer { statusCode: number, text: string }

/** Google's refusals that it would give the call itself, answered as Google gave them. */
const REFUSALS: Readonly<Record<number, new (message: string) => Error>> = { 400: BadRequestError, 403: ForbiddenError, 404: NotFoundError }

/** Google's own message in an error answer, if it gives one. */
function googleMessage (answer: UpstreamAnswer): string {
  const error = jsonObject(Buffer.from(answer.text))?.error as { message?: unknown } | undefined
  return typeof error?.message === 'string' ? error.message : `it answered ${answer.statusCode}`
}

/** How to explain a call the policy could not reserve for: Google refused to say (`refused`), or said nothing usable (`missing`, lacking `what`). */
export interface Unanswered { refused: string, missing: string, what: string }

/**
 * What a call gets when the policy could not learn from Google's `answer` what to reserve for it:
 * Google's own 400, 403 or 404 (it would give the call the same) with Google's message; any other
 * answer 503 with Retry-After. Never an unreserved call.
 */
export function withoutAnswer (answer: UpstreamAnswer, say: Unanswered): Error {
  const Refusal = REFUSALS[answer.statusCode]
  if (Refusal !== undefined) return new Refusal(`${say.refused}: ${googleMessage(answer)}`)
  const gave = answer.statusCode === 200 ? 'an answer without one' : `it answered ${answer.statusCode}`
  return withExtras(new ServiceUnavailableError(`${say.missing}, and Google gave no ${say.what} (${gave}); try again shortly.`), { headers: { 'retry-after': '1' } })
}

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
