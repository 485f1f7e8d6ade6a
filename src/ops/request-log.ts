import fp from 'fastify-plugin'
import { redactUrl } from './logger.js'

/** One log line per request (method, route, status, duration, request id, person); echoes x-request-id. */
export default fp(async function requestLogPlugin (app) {
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })

  app.addHook('onResponse', async (request, reply) => {
    if (request.routeOptions.logLevel === 'warn' && reply.statusCode < 400) return
    request.log.info({
      method: request.method,
      url: redactUrl(request.url),
      route: request.routeOptions.url ?? null,
      status: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 10) / 10,
      person: request.identity?.email ?? null,
    }, 'request')
  })
}, { name: 'gemgate-request-log' })
