import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { CLIENT_CLOSED_STATUS } from '../errors.js'
import { elapsedMs } from './early-start.js'
import { pinoLineWriter } from './pino-line.js'
import { redactUrl } from './redact.js'

/** The fields of one access line; `url` as received (it is redacted here). */
export interface AccessEntry {
  requestId: string
  method: string
  url: string
  route: string | null
  status: number
  durationMs: number
  person: string | null
  keyId: string | null
  error: string | null
  /** A probe's route (level warn): logged only when it failed, and at warn. */
  quiet: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Writes the access line of a request answered outside Fastify's hooks (the API fast path). */
    logRequest: (entry: AccessEntry) => void
  }
}

/** The access line's fields, in the order they are written. */
const ACCESS_FIELDS = ['requestId', 'method', 'url', 'route', 'status', 'durationMs', 'person', 'keyId', 'error'] as const

/** One log line per request (method, route, status, duration, request id, person, key id); echoes x-request-id. */
export default fp(async function requestLogPlugin (app) {
  const errorCodes = new WeakMap<FastifyRequest, string>()
  // Requests logged by onResponse although their answer did not finish (a response 'error').
  const answered = new WeakSet<FastifyRequest>()
  // The access line is built below from fixed fields, none of which can hold a secret (the URL
  // is redacted by redactUrl), so it skips pino's path redaction, and where pino would do nothing
  // else to it (the gateway's own logger), its generic serializer too.
  const accessLog = app.log.child({}, { redact: [] })
  const writeLine = { info: pinoLineWriter(accessLog, 'info', 'request', ACCESS_FIELDS), warn: pinoLineWriter(accessLog, 'warn', 'request', ACCESS_FIELDS) }

  const logRequest = (entry: AccessEntry): void => {
    if (entry.quiet && entry.status < 400) return
    const values = [
      entry.requestId, entry.method, redactUrl(entry.url), entry.route, entry.status, Math.round(entry.durationMs * 10) / 10,
      // keyId: which of the person's gateway keys made the call (its id, never the secret).
      entry.person, entry.keyId, entry.error,
    ]
    const level = entry.quiet ? 'warn' : 'info'
    const write = writeLine[level]
    if (write === null) accessLog[level](Object.fromEntries(ACCESS_FIELDS.map((name, index) => [name, values[index]])), 'request')
    else write(values)
  }
  app.decorate('logRequest', logRequest)

  // Callback hooks, not async ones: they run on every request, and a promise each is measurable.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    // An answer the client hung up on never finishes, so Fastify runs no onResponse for it: it is
    // logged and counted here, as 499, like the API fast path's. A WebSocket upgrade's response is
    // never sent at all.
    if (request.headers.upgrade === undefined) reply.raw.once('close', () => { if (!reply.raw.writableFinished && !answered.has(request)) clientClosed(request, reply) })
    done()
  })

  const clientClosed = (request: FastifyRequest, reply: FastifyReply): void => {
    const entry = { ...accessEntry(request, reply), status: CLIENT_CLOSED_STATUS }
    logRequest(entry)
    app.countRequest(entry.method, entry.route ?? 'unmatched', entry.status, entry.durationMs / 1000)
  }

  app.addHook('onError', async (request, _reply, error) => {
    errorCodes.set(request, error.code ?? error.name)
  })

  /** The access line of a request Fastify served. */
  const accessEntry = (request: FastifyRequest, reply: FastifyReply): AccessEntry => ({
    requestId: request.id,
    method: request.method,
    url: request.url,
    route: request.routeOptions.url ?? null,
    status: reply.statusCode,
    durationMs: elapsedMs(request.raw, reply.elapsedTime),
    person: request.identity?.email ?? null,
    keyId: request.identity?.keyId ?? null,
    error: errorCodes.get(request) ?? null,
    // Probes (routes at level warn) log only when they fail, and at warn: their logger drops info.
    quiet: request.routeOptions.logLevel === 'warn',
  })

  app.addHook('onResponse', (request, reply, done) => {
    // Run on 'finish', or on an 'error' of the response: then the 'close' after it logs nothing more.
    if (!reply.raw.writableFinished) answered.add(request)
    logRequest(accessEntry(request, reply))
    done()
  })
}, { name: 'gemgate-request-log', dependencies: ['gemgate-metrics'] })
