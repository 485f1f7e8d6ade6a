import type { FastifyInstance } from 'fastify'
import type { Dispatcher } from 'undici'
import type { IncomingHttpHeaders } from 'node:http'
import type { Identity } from '../auth/identity.js'
import { upstreamRequestHeaders } from '../proxy/headers.js'

/**
 * A GET to the upstream with `identity`'s access token, refreshed and tried once more when the
 * upstream refuses it (401); the answer read whole, asked for plain (it is read here).
 */
export async function upstreamGet (app: FastifyInstance, pool: Dispatcher, identity: Identity, request: { path: string, id: string, headers?: IncomingHttpHeaders }): Promise<{ statusCode: number, text: string }> {
  for (const force of [false, true]) {
    const headers = upstreamRequestHeaders(request.headers ?? {}, {
      accessToken: await app.vault.accessToken(identity.personId, { force }),
      requestId: request.id,
      quotaProject: app.config.upstream.quotaProject,
    })
    delete headers['accept-encoding']
    const answer = await pool.request({ method: 'GET', path: request.path, headers })
    if (answer.statusCode !== 401 || force) return { statusCode: answer.statusCode, text: await answer.body.text() }
    await answer.body.dump()
  }
  throw new Error('unreachable')
}
