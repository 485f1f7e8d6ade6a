import t from 'tap'
import { SessionStore } from '../src/auth/sessions.js'
import { startProvider } from './fixtures/oidc.js'
import { startRedis } from './fixtures/redis.js'
import { encryptionKey, makeVault, providerGrant, providerRevoke, redisStore, refreshSummary, signIn, waitFor } from './token-helpers.js'

const INACTIVE_AFTER_MS = 1_500

t.test('people with no live session and no key for INACTIVE_PERSON_DAYS are revoked at the provider and no longer refreshed', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: 2, rotateRefreshTokens: true })
  const store = redisStore(t, redis.url)
  const vault = makeVault(t, store, { keys: [encryptionKey()], grant: providerGrant(provider), inactiveAfterMs: INACTIVE_AFTER_MS, revoke: providerRevoke(provider) })
  // Real sessions in the same Redis: one that ends at once (idle expiry), one that lives.
  const briefSessions = new SessionStore(store, { idleMs: 200, maxMs: 60_000 })
  const lastingSessions = new SessionStore(store, { idleMs: 60_000, maxMs: 60_000 })
  vault.addAccessCheck(async (personId) => await briefSessions.hasLive(personId) || await lastingSessions.hasLive(personId))
  const gone = await signIn(provider, vault, 'gone-quiet')
  const active = await signIn(provider, vault, 'still-here')
  await briefSessions.create(gone.personId)
  await lastingSessions.create(active.personId)
  const goneRefreshToken = (await vault.load(gone.personId))!.refreshToken!
  vault.start()

  t.ok(await waitFor(async () => await vault.load(gone.personId) === null, 10_000, 100), 'the inactive person\'s tokens were dropped')
  const retiredAt = Date.now()
  const grantsBefore = refreshSummary(provider, gone.sub).ok
  t.ok(grantsBefore >= 1, 'they were refreshed while the inactivity lasted less than the setting')
  const lastIssued = provider.refreshGrantsFor(gone.sub).at(-1)?.refreshTokenIssued ?? goneRefreshToken
  t.equal((await provider.introspect(lastIssued)).active, false, 'their refresh token was revoked at the provider')

  await new Promise((resolve) => setTimeout(resolve, 3_000))
  t.equal(refreshSummary(provider, gone.sub).ok, grantsBefore, 'and they are refreshed no more')
  t.ok(provider.refreshGrantsFor(active.sub).some((grant) => grant.success && grant.at > retiredAt), 'the person with a live session is still refreshed')
  t.ok(await vault.load(active.personId), 'and keeps their tokens')
})
