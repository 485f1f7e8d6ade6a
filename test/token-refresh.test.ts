import fastify from 'fastify'
import t from 'tap'
import { personIdFor } from '../src/auth/person.js'
import { OidcProvider } from '../src/auth/provider.js'
import type { Config } from '../src/config/schema.js'
import metricsPlugin from '../src/ops/metrics.js'
import vaultPlugin from '../src/tokens/plugin.js'
import { startFakeGemini } from './fixtures/gemini.js'
import { startProvider } from './fixtures/oidc.js'
import { startRedis } from './fixtures/redis.js'
import { PUBLIC_URL, SCOPE, doubleRefreshes, encryptionKey, makeVault, providerGrant, redisStore, refreshSummary, signIn, steadyCalls, waitFor } from './token-helpers.js'

const LIFETIME_SECONDS = 5
const REFRESH_AHEAD_MS = 2_000
const STEADY_MS = 30_000

t.test('30 s of steady calls: no expired token, one refresh grant per lifetime per person', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: LIFETIME_SECONDS })
  const gemini = await startFakeGemini(t, { provider })
  const vault = makeVault(t, redisStore(t, redis.url), { keys: [encryptionKey()], grant: providerGrant(provider), refreshAheadMs: REFRESH_AHEAD_MS })
  const people = await Promise.all(['steady-1', 'steady-2', 'steady-3'].map(async (sub) => await signIn(provider, vault, sub)))
  vault.start()

  const end = Date.now() + STEADY_MS
  const report = await steadyCalls({ vaults: [vault], people, upstreamUrl: gemini.url, intervalMs: 100, until: () => Date.now() >= end })

  t.ok(report.calls > 100, `${report.calls} calls made`)
  t.equal(report.unauthorized, 0, 'no call reached the upstream with an expired token')
  t.same(report.vaultErrors, {}, 'the vault never failed a call')
  for (const person of people) {
    const { ok, failed } = refreshSummary(provider, person.sub)
    t.comment(`${person.sub}: ${ok} refresh grants in ${STEADY_MS / 1000} s with ${LIFETIME_SECONDS} s tokens`)
    t.equal(failed, 0)
    t.equal(doubleRefreshes(provider, person.sub, 1_000), 0, 'never two refreshes of one token')
    // One refresh per token: the count is bounded by the lifetimes that fit in the run.
    t.ok(ok >= STEADY_MS / (LIFETIME_SECONDS * 1000), 'at least one refresh per lifetime')
    t.ok(ok <= STEADY_MS / (LIFETIME_SECONDS * 1000 / 2 - 300) + 1, 'at most one refresh per token')
  }
})

t.test('concurrent requests on two replicas share one refresh', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: 60, rotateRefreshTokens: true })
  const keys = [encryptionKey()]
  const grant = providerGrant(provider)
  const replicas = [makeVault(t, redisStore(t, redis.url), { keys, grant }), makeVault(t, redisStore(t, redis.url), { keys, grant })]
  const person = await signIn(provider, replicas[0]!, 'shared', Date.now() - 1)

  const tokens = await Promise.all(Array.from({ length: 40 }, async (_, index) => await replicas[index % 2]!.accessToken(person.personId)))
  t.equal(new Set(tokens).size, 1, 'every caller on both replicas got the one new token')
  t.same(refreshSummary(provider, 'shared'), { ok: 1, failed: 0, reused: 0 }, 'one refresh grant at the provider')
  t.equal((await provider.introspect(tokens[0]!)).active, true)
})

t.test('the plugin decorates app.vault, refreshes in the background and exports the token metrics', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: 60 })
  const app = fastify()
  t.teardown(async () => { await app.close() })
  const store = redisStore(t, redis.url)
  const config = { publicUrl: PUBLIC_URL, tokenEncryptionKeys: [encryptionKey()], refreshAheadSeconds: 58, refreshConcurrency: 2, oidc: { timeoutSeconds: 10 }, inactivePersonDays: 30 } as unknown as Config
  app.decorate('config', config)
  app.decorate('store', store)
  app.decorate('provider', new OidcProvider({ issuer: provider.issuer, clientId: provider.clientId, clientSecret: provider.clientSecret, scopes: SCOPE, authParams: '' }, app.log))
  await app.register(metricsPlugin)
  await app.register(vaultPlugin)
  await app.ready()

  provider.addUser({ sub: 'metered', email: 'metered@example.com' })
  const tokens = await provider.issueTokens({ user: 'metered', scope: SCOPE })
  const personId = personIdFor(provider.issuer, 'metered')
  await app.vault.save(personId, 'metered', { accessToken: tokens.access_token, refreshToken: tokens.refresh_token, expiresAt: Date.now() + 4_000 })
  t.ok(await waitFor(async () => (await app.vault.load(personId))?.lastRefreshAt !== undefined, 10_000), 'refreshed in the background (due 2 s in)')
  t.equal(refreshSummary(provider, 'metered').ok, 1)

  const metrics = (await app.inject('/metrics')).body
  t.match(metrics, /gemgate_token_refreshes_total\{result="ok"\} 1/)
  t.match(metrics, /gemgate_token_refreshes_total\{result="invalid_grant"\} 0/)
  t.match(metrics, /gemgate_token_refreshes_total\{result="invalid_client"\} 0/)
  t.match(metrics, /gemgate_token_refresh_duration_seconds_count 1/)
  t.match(metrics, /gemgate_tokens_held 1/)
  // The record lands a moment before the refresh finishes indexing it and lets the result go.
  t.ok(await waitFor(async () => /gemgate_token_refreshes_unsaved 0/.test((await app.inject('/metrics')).body), 2_000), 'no result waits to be saved')
  const soonest = Number(/gemgate_token_soonest_expiry_seconds ([\d.e+-]+)/.exec(metrics)?.[1])
  t.ok(soonest > 50 && soonest <= 60, `soonest expiry in ${soonest} s`)
})
