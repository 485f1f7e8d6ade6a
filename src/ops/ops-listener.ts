import fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { notFoundHandler } from '../errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * With METRICS_PORT set: the ops listener (/metrics, /readyz, /healthz), built and closed with
     * the app; whoever owns the process listens on it (src/main.ts). Null when METRICS_PORT is unset.
     */
    opsServer: FastifyInstance | null
  }
}

/** Routes the ops listener serves: only what Prometheus and an orchestrator need, nothing a person does. */
function opsRoutes (app: FastifyInstance, ops: FastifyInstance, closing: () => boolean): void {
  ops.get('/healthz', async () => ({ status: 'ok' }))
  ops.get('/readyz', async (request, reply) => {
    // A draining replica is not ready: on the public port its 503 to every new request says so.
    if (closing()) return await reply.code(503).send({ status: 'not ready', down: ['closing'], checks: {} })
    const report = await app.readinessReport(request.log)
    return await reply.code(report.ready ? 200 : 503).send(report.body)
  })
  ops.get('/metrics', async (_request, reply) => {
    reply.header('content-type', app.metrics.contentType)
    return await app.metrics.metrics()
  })
  ops.setNotFoundHandler(notFoundHandler)
}

/**
 * METRICS_PORT: a second, separate listener for /metrics and /readyz, so the public port does not
 * tell the internet the gateway's traffic, routes and dependency health. Unset: nothing here, and
 * the public port serves them as before.
 */
export default fp(async function opsListenerPlugin (app) {
  if (app.config.metricsPort === undefined) {
    app.decorate('opsServer', null)
    return
  }
  // Its own instance: no hooks, cookies, CORS or identity of the public app apply to it.
  const ops = fastify({ logger: false })
  let closing = false
  opsRoutes(app, ops, () => closing)
  app.decorate('opsServer', ops)
  app.addHook('preClose', async () => { closing = true })
  app.addHook('onClose', async () => { await ops.close() })
}, { name: 'gemgate-ops-listener', dependencies: ['gemgate-health', 'gemgate-metrics'] })
