import fp from 'fastify-plugin'
import { Registry, collectDefaultMetrics } from 'prom-client'
import { SummedCounter, type CounterSeries } from './summed-counter.js'
import { SummedHistogram, type HistogramSeries } from './summed-histogram.js'
import { elapsedMs } from './early-start.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** This app's Prometheus registry: plugins add their own metrics to it. */
    metrics: Registry
    /** Counts one answered request (method, route pattern, status, seconds): for requests answered outside Fastify's hooks. */
    countRequest: (method: string, route: string, status: number, seconds: number) => void
  }
}

/** Prometheus metrics: process metrics, and requests by route and status, at GET /metrics. */
export default fp(async function metricsPlugin (app) {
  // One registry per app, so tests can build several apps in one process.
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  app.decorate('metrics', registry)

  const requests = new SummedCounter({
    name: 'gemgate_http_requests_total',
    help: 'HTTP requests answered, by method, route and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  })
  const duration = new SummedHistogram({
    name: 'gemgate_http_request_duration_seconds',
    help: 'Time to answer an HTTP request (streams: until the last byte), by method, route and status.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  })

  // Series by method, route and status: prom-client would otherwise hash the labels on every
  // request. Maps within maps: a key joined from the three would be a new string to hash each time.
  const series = new Map<string, Map<string, Map<number, { requests: CounterSeries, duration: HistogramSeries }>>>()
  const countRequest = (method: string, route: string, status: number, seconds: number): void => {
    let routes = series.get(method)
    if (routes === undefined) series.set(method, routes = new Map())
    let statuses = routes.get(route)
    if (statuses === undefined) routes.set(route, statuses = new Map())
    let children = statuses.get(status)
    if (children === undefined) {
      const labels = { method, route, status: String(status) }
      statuses.set(status, children = { requests: requests.series(labels), duration: duration.series(labels) })
    }
    children.requests.value++
    children.duration.observe(seconds)
  }
  app.decorate('countRequest', countRequest)
  app.addHook('onResponse', (request, reply, done) => {
    countRequest(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, elapsedMs(request.raw, reply.elapsedTime) / 1000)
    done()
  })

  // With METRICS_PORT set, the metrics are answered on the ops listener only (src/ops/ops-listener.ts).
  if (app.config.metricsPort !== undefined) return
  app.get('/metrics', { logLevel: 'warn' }, async (_request, reply) => {
    reply.header('content-type', registry.contentType)
    return await registry.metrics()
  })
}, { name: 'gemgate-metrics' })
