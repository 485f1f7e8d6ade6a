import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { openidRefreshGrant, openidRevokeGrant, tracedGrant } from './grant.js'
import type { RefreshObserver } from './refresher.js'
import { StoreTokenVault } from './store-vault.js'
import type { TokenVault } from './vault.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Every person's tokens, encrypted in the store and refreshed before they expire. */
    vault: TokenVault
  }
}

const DAY_MS = 24 * 60 * 60 * 1000

function refreshMetrics (registry: Registry): RefreshObserver {
  const refreshes = new Counter({
    name: 'gemgate_token_refreshes_total',
    help: 'Refresh-token grants attempted, by result (ok, invalid_grant, invalid_client: the gateway\'s client credentials, transient_error: the provider failed or timed out).',
    labelNames: ['result'] as const,
    registers: [registry],
  })
  for (const result of ['ok', 'invalid_grant', 'invalid_client', 'transient_error']) refreshes.inc({ result }, 0)
  const duration = new Histogram({
    name: 'gemgate_token_refresh_duration_seconds',
    help: 'Time the provider took to answer a refresh-token grant.',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  })
  const inFlight = new Gauge({
    name: 'gemgate_token_refreshes_in_flight',
    help: 'Background refreshes this replica is running now (bounded by REFRESH_CONCURRENCY).',
    registers: [registry],
  })
  const unsaved = new Gauge({
    name: 'gemgate_token_refreshes_unsaved',
    help: 'Granted refresh results this replica holds in memory because the store has not taken them yet (retried until it does).',
    registers: [registry],
  })
  return {
    refreshed: (result, seconds) => {
      refreshes.inc({ result })
      duration.observe(seconds)
    },
    inFlight: (count) => inFlight.set(count),
    unsaved: (count) => unsaved.set(count),
  }
}

function storeMetrics (registry: Registry, vault: StoreTokenVault): void {
  // Read from the shared store once per scrape: every replica reports the same totals.
  let scrape: Promise<{ held: number, soonestExpiry: number | null } | null> | undefined
  const stats = async (): Promise<{ held: number, soonestExpiry: number | null } | null> => {
    scrape ??= vault.stats().catch(() => null).finally(() => { scrape = undefined })
    return await scrape
  }
  new Gauge({
    name: 'gemgate_tokens_held',
    help: 'People whose tokens the gateway holds (all replicas).',
    registers: [registry],
    async collect () {
      // NaN while the store does not answer: an old count would look current.
      const current = await stats()
      this.set(current === null ? NaN : current.held)
    },
  })
  new Gauge({
    name: 'gemgate_token_soonest_expiry_seconds',
    help: 'Seconds until the soonest access-token expiry among all held tokens (negative: already expired; +Inf: none).',
    registers: [registry],
    async collect () {
      const current = await stats()
      if (current === null) this.set(NaN)
      else this.set(current.soonestExpiry === null ? Infinity : (current.soonestExpiry - Date.now()) / 1000)
    },
  })
}

/** Decorates `app.vault`, registers the token metrics, and runs the background refresher while the app is up. */
export default fp(async function vaultPlugin (app) {
  const { config } = app
  const vault = new StoreTokenVault(app.store, {
    keys: config.tokenEncryptionKeys,
    publicUrl: config.publicUrl,
    grant: tracedGrant(openidRefreshGrant(app.provider)),
    refreshAheadMs: config.refreshAheadSeconds * 1000,
    providerTimeoutMs: config.oidc.timeoutSeconds * 1000,
    inactiveAfterMs: config.inactivePersonDays * DAY_MS,
    revoke: openidRevokeGrant(app.provider),
    concurrency: config.refreshConcurrency,
    observer: refreshMetrics(app.metrics),
    log: app.log.child({ component: 'tokens' }),
    // Registered alone (as in its own tests) there is no identity seam: no cache, every call reads the store.
    changes: app.hasDecorator('personChanges') ? app.personChanges : undefined,
  })
  storeMetrics(app.metrics, vault)
  app.decorate('vault', vault)
  app.addHook('onReady', async () => { vault.start() })
  // Before the app's own onClose closes the store: in-flight refreshes still write their results.
  app.addHook('preClose', async () => { await vault.stop() })
}, { name: 'gemgate-vault', dependencies: ['gemgate-metrics'] })
