import fp from 'fastify-plugin'
import { Counter, Gauge } from 'prom-client'
import type { Config } from '../config/schema.js'

/** Where the settings point Redis, for log lines: hosts and ports, never a password or user name. */
export function describeRedis (redis: Config['redis']): string {
  if (redis.clusterNodes !== undefined) return `Redis Cluster (${redis.clusterNodes.join(', ')})`
  if (redis.sentinels !== undefined) return `Redis (Sentinel master ${redis.sentinelName ?? ''} via ${redis.sentinels.join(', ')})`
  if (redis.url === undefined) return 'the in-memory store'
  if (!URL.canParse(redis.url)) return 'Redis (REDIS_URL)'
  const url = new URL(redis.url)
  return `Redis at ${url.protocol}//${url.host}${url.pathname.length > 1 ? url.pathname : ''}`
}

function reason (cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause)
}

/**
 * Reports the store's outages: one log line when Redis stops answering and one when it is back
 * (not one per failed request), `gemgate_store_up`, and `gemgate_store_errors_total`.
 */
export default fp(async function storeStatusPlugin (app) {
  const { status } = app.store
  if (status === undefined) return
  const where = describeRedis(app.config.redis)
  const grace = app.config.storeOutageGraceSeconds
  const up = new Gauge({ name: 'gemgate_store_up', help: '1 while the store (Redis) answers, 0 during an outage.', registers: [app.metrics] })
  const errors = new Counter({ name: 'gemgate_store_errors_total', help: 'Store commands that failed because the store (Redis) was unreachable or could not serve.', registers: [app.metrics] })
  up.set(1)
  status.observe({
    down: (cause) => {
      up.set(0)
      app.log.error({ reason: reason(cause) }, `${where} is not answering (${reason(cause)}): cached callers are served for ${grace} s, then requests get 503 until it answers; retrying`)
    },
    up: (downForMs) => {
      up.set(1)
      app.log.info({ downForMs }, `${where} answers again after ${(downForMs / 1000).toFixed(1)} s`)
    },
    error: () => { errors.inc() },
  })
}, { name: 'gemgate-store-status', dependencies: ['gemgate-metrics'] })
