import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { elapsedMs } from './early-start.js'
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

/** One log line per request (method, route, status, duration, request id, person, key id); echoes x-request-id. */
export default fp(async function requestLogPlugin (app) {
  const errorCodes = new WeakMap<FastifyRequest, string>()
  // The access line is built below from fixed fields, none of which can hold a secret (the URL
  // is redacted by redactUrl), so it skips pino's path redaction: half the cost of the line.
  const accessLog = app.log.child({}, { redact: [] })

  const logRequest = (entry: AccessEntry): void => {
    if (entry.quiet && entry.status < 400) return
    accessLog[entry.quiet ? 'warn' : 'info']({
      requestId: entry.requestId,
      method: entry.method,
      url: redactUrl(entry.url),
      route: entry.route,
      status: entry.status,
      durationMs: Math.round(entry.durationMs * 10) / 10,
      person: entry.person,
      // Which of the person's gateway keys made the call (its id, never the secret).
      keyId: entry.keyId,
      error: entry.error,
    }, 'request')
  }
  app.decorate('logRequest', logRequest)

  // Callback hooks, not async ones: they run on every request, and a promise each is measurable.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    done()
  })

  app.addHook('onError', async (request, _reply, error) => {
    errorCodes.set(request, error.code ?? error.name)
  })

  app.addHook('onResponse', (request, reply, done) => {
    logRequest({
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
    done()
  })
}, { name: 'gemgate-request-log' })
