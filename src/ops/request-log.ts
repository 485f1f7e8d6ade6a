import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { redactUrl } from './redact.js'

/** One log line per request (method, route, status, duration, request id, person, key id); echoes x-request-id. */
export default fp(async function requestLogPlugin (app) {
  const errorCodes = new WeakMap<FastifyRequest, string>()
  // The access line is built below from fixed fields, none of which can hold a secret (the URL
  // is redacted by redactUrl), so it skips pino's path redaction: half the cost of the line.
  const accessLog = app.log.child({}, { redact: [] })

  // Callback hooks, not async ones: they run on every request, and a promise each is measurable.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    done()
  })

  app.addHook('onError', async (request, _reply, error) => {
    errorCodes.set(request, error.code ?? error.name)
  })

  app.addHook('onResponse', (request, reply, done) => {
    // Probes (routes at level warn) log only when they fail, and at warn: their logger drops info.
    const quiet = request.routeOptions.logLevel === 'warn'
    if (quiet && reply.statusCode < 400) {
      done()
      return
    }
    accessLog[quiet ? 'warn' : 'info']({
      requestId: request.id,
      method: request.method,
      url: redactUrl(request.url),
      route: request.routeOptions.url ?? null,
      status: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 10) / 10,
      person: request.identity?.email ?? null,
      // Which of the person's gateway keys made the call (its id, never the secret).
      keyId: request.identity?.keyId ?? null,
      error: errorCodes.get(request) ?? null,
    }, 'request')
    done()
  })
}, { name: 'gemgate-request-log' })
