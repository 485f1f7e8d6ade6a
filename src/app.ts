import fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import adminPlugin from './admin/plugin.js'
import auditPlugin from './audit/plugin.js'
import { withErrorPages, withNotFoundPage } from './auth/error-pages.js'
import identityPlugin from './auth/identity.js'
import authPlugin from './auth/plugin.js'
import keysPlugin from './auth/keys.js'
import { OidcProvider } from './auth/provider.js'
import type { Config } from './config/schema.js'
import connectionsPlugin from './connections/registry.js'
import ephemeralPlugin from './ephemeral/plugin.js'
import { errorHandler, notFoundHandler } from './errors.js'
import healthPlugin from './ops/health.js'
import livePlugin from './live/plugin.js'
import lateHeadersPlugin from './ops/late-headers.js'
import openAiPlugin from './openai/plugin.js'
import metricsPlugin from './ops/metrics.js'
import { requestIdOf } from './ops/early-start.js'
import opsListenerPlugin from './ops/ops-listener.js'
import requestLogPlugin from './ops/request-log.js'
import policyPlugin from './policy/plugin.js'
import { fastPathServer, type FastPathSlot } from './proxy/fast-path.js'
import geminiProxyPlugin from './proxy/gemini.js'
import usagePlugin from './proxy/usage-plugin.js'
import appProxyPlugin from './sidecar/app-proxy.js'
import assertionPlugin from './sidecar/assertion.js'
import verifyPlugin from './sidecar/verify.js'
import storeStatusPlugin from './store/plugin.js'
import { createStore } from './store/redis.js'
import type { Store } from './store/store.js'
import vaultPlugin from './tokens/plugin.js'
import tracingPlugin from './tracing/plugin.js'

/** How long an idle keep-alive connection stays open (above common load-balancer idle timeouts). */
export const DEFAULT_KEEP_ALIVE_TIMEOUT = 72_000
/** Longest time to receive a whole request, body included (uploads can be large). */
export const DEFAULT_REQUEST_TIMEOUT = 300_000

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    store: Store
    provider: OidcProvider
    /** The server's fast path for model calls, filled by the Gemini proxy (src/proxy/fast-path.ts). */
    fastPath: FastPathSlot
  }
}

function trustHops (hops: number) {
  return (_address: string, hop: number): boolean => hop < hops
}

/** What a caller may supply instead of the defaults: a logger, or a store shared with others. */
export interface AppOptions {
  logger?: FastifyServerOptions['logger']
  store?: Store
}

/** Builds the whole gateway from a validated config; the caller listens and closes it. */
export async function buildApp (config: Config, options: AppOptions = {}): Promise<FastifyInstance> {
  const fastPath: FastPathSlot = {}
  const app = fastify({
    logger: options.logger ?? false,
    trustProxy: typeof config.trustProxy === 'number' ? trustHops(config.trustProxy) : config.trustProxy,
    // Our own hook logs one line per request instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    genReqId: requestIdOf,
    // Model calls are offered to the proxy's fast path before Fastify routes them; the server
    // gets the timeouts below, which Fastify does not apply to a server it did not create.
    serverFactory: (handler, settings) => fastPathServer(fastPath, handler, settings),
    connectionTimeout: 0,
    keepAliveTimeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
    requestTimeout: DEFAULT_REQUEST_TIMEOUT,
    // The health plugin answers requests that reach a closing replica, in the API's error shape.
    return503OnClosing: false,
    // Malformed URLs and headers Fastify refuses before routing still answer in Google's shape.
    frameworkErrors: (error, request, reply) => errorHandler({ ...error, statusCode: error.statusCode ?? 400, message: error.message }, request, reply),
  })

  const store = options.store ?? await createStore(config.redis)
  if (store.kind === 'memory') {
    app.log.warn('REDIS_URL is not set: sessions and tokens live in this process only; run a single replica')
  }
  const provider = new OidcProvider(config.oidc, app.log.child({ component: 'provider' }))

  app.decorate('config', config)
  app.decorate('store', store)
  app.decorate('provider', provider)
  app.decorate('fastPath', fastPath)
  // Browsers get a page in the gateway's look, programs Google's error JSON.
  app.setErrorHandler(withErrorPages(errorHandler))
  app.setNotFoundHandler(withNotFoundPage(notFoundHandler))

  // First: its request hook opens the span everything after it runs in (when tracing is on).
  await app.register(tracingPlugin)
  await app.register(lateHeadersPlugin)
  await app.register(healthPlugin)
  await app.register(metricsPlugin)
  await app.register(storeStatusPlugin)
  await app.register(opsListenerPlugin)
  await app.register(requestLogPlugin)
  await app.register(auditPlugin)
  await app.register(identityPlugin)
  await app.register(connectionsPlugin)
  // The token vault registers before sign-in, which stores tokens in it.
  await app.register(vaultPlugin)
  await app.register(authPlugin)
  await app.register(keysPlugin)
  await app.register(assertionPlugin)
  // After sign-in and keys, whose sessions, keys and sign-out it administers.
  await app.register(adminPlugin)
  await app.register(usagePlugin)
  // Before the proxy and the Live relay, which admit every call through it.
  await app.register(policyPlugin)
  await app.register(ephemeralPlugin)
  await app.register(livePlugin)
  await app.register(openAiPlugin)
  await app.register(verifyPlugin)
  await app.register(geminiProxyPlugin)
  // Last: it answers every path no other plugin owns.
  await app.register(appProxyPlugin)
  app.readiness.set('redis', async () => { await store.ping() })
  app.readiness.set('provider', async () => { await provider.configuration() })

  app.addHook('onReady', async () => { provider.start() })
  app.addHook('onClose', async () => {
    provider.stop()
    if (options.store === undefined) await store.close()
  })
  return app
}
