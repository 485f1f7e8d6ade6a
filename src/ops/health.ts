import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
import { ServiceUnavailableError, loggedElsewhere } from '../errors.js'

/** A dependency the gateway needs before it can serve: resolves when it is up, rejects with why not. */
export type ReadinessCheck = () => Promise<void>

/** What GET /readyz answers: ready or not, and each check's state. */
export interface ReadinessReport {
  ready: boolean
  body: { status: 'ready' | 'not ready', checks: Record<string, 'ok' | 'down'>, down?: string[] }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Named readiness checks that GET /readyz runs; plugins add theirs. */
    readiness: Map<string, ReadinessCheck>
    /** Runs every readiness check, for /readyz here or on the ops listener. */
    readinessReport: (log: FastifyBaseLogger) => Promise<ReadinessReport>
  }
}

/** Longest a single readiness check may take before it counts as down. */
export const READINESS_TIMEOUT = 2_000

async function withTimeout (check: ReadinessCheck): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${READINESS_TIMEOUT} ms`)), READINESS_TIMEOUT)
  })
  try {
    await Promise.race([check(), timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** While closing, how often idle keep-alive connections are closed so the drain can finish. */
const DRAIN_SWEEP_INTERVAL = 100
/** While closing, how long a connection may stay open without sending a request. */
const SILENT_GRACE_MS = 1_000

/**
 * GET /healthz (the process runs) and GET /readyz (every dependency answers); and the drain on
 * close: server.close() closes only connections idle at that moment, so a request still in
 * flight would leave its keep-alive connection open (for the keep-alive timeout) after it ends.
 */
export default fp(async function healthPlugin (app) {
  app.decorate('readiness', new Map<string, ReadinessCheck>())

  // Connections that have not sent a request yet: Node counts them as busy (its headers timeout,
  // 60 s, runs on them), so closeIdleConnections leaves them and they would hold the drain up.
  const silent = new Map<Socket, number>()
  app.server.on('connection', (socket: Socket) => {
    silent.set(socket, Date.now())
    socket.once('close', () => silent.delete(socket))
  })
  const spoke = (request: IncomingMessage): void => { silent.delete(request.socket) }
  app.server.on('request', spoke)
  app.server.on('upgrade', spoke)
  let sweep: NodeJS.Timeout | undefined
  app.addHook('preClose', async () => {
    sweep = setInterval(() => {
      app.server.closeIdleConnections()
      // One that connected just before the close may still be sending its first request: it gets a moment.
      const before = Date.now() - SILENT_GRACE_MS
      for (const [socket, since] of silent) if (since < before) socket.destroy()
    }, DRAIN_SWEEP_INTERVAL).unref()
  })
  // A request that still reaches a closing replica (on a connection in use) is not served: 503
  // in the API's error shape, so clients and load balancers retry elsewhere.
  app.addHook('onRequest', (_request, _reply, done) => {
    done(sweep === undefined ? undefined : new ServiceUnavailableError('This gateway replica is shutting down; send the request again.'))
  })
  // Every answer given while closing tells the client not to reuse the connection.
  app.lateHeaders.push((_request, reply) => {
    if (sweep !== undefined) reply.header('connection', 'close')
  })
  app.addHook('onClose', async () => { clearInterval(sweep) })

  app.get('/healthz', { logLevel: 'warn' }, async () => ({ status: 'ok' }))

  app.decorate('readinessReport', async (log: FastifyBaseLogger): Promise<ReadinessReport> => {
    const results = await Promise.all([...app.readiness].map(async ([name, check]) => {
      try {
        await withTimeout(check)
        return [name, 'ok'] as const
      } catch (error) {
        // A store outage is logged once when it starts, not on every probe.
        if (loggedElsewhere(error)) log.debug({ check: name }, 'readiness check failed')
        else log.warn({ check: name, err: error }, 'readiness check failed')
        return [name, 'down'] as const
      }
    }))
    const checks = Object.fromEntries(results)
    const down = results.filter(([, state]) => state !== 'ok').map(([name]) => name)
    return down.length === 0 ? { ready: true, body: { status: 'ready', checks } } : { ready: false, body: { status: 'not ready', down, checks } }
  })

  // With METRICS_PORT set, readiness is answered on the ops listener only (src/ops/ops-listener.ts).
  if (app.config.metricsPort !== undefined) return
  app.get('/readyz', { logLevel: 'warn' }, async (request, reply) => {
    const report = await app.readinessReport(request.log)
    reply.code(report.ready ? 200 : 503)
    return report.body
  })
}, { name: 'gemgate-health', dependencies: ['gemgate-late-headers'] })
