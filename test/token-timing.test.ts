import t from 'tap'
import type { RefreshGrant } from '../src/tokens/grant.js'
import { startProvider } from './fixtures/oidc.js'
import { startRedis } from './fixtures/redis.js'
import { encryptionKey, makeVault, providerGrant, redisStore, refreshSummary, signIn, waitFor } from './token-helpers.js'

/** Settles with how long `promise` took and how it ended (never rejects). */
async function timed<T> (promise: Promise<T>): Promise<{ ms: number, value?: T, code?: string }> {
  const started = Date.now()
  try {
    const value = await promise
    return { ms: Date.now() - started, value }
  } catch (error) {
    return { ms: Date.now() - started, code: (error as { code?: string }).code ?? String(error) }
  }
}

t.test('a slow provider: expiry counts from when the refresh was sent, never past the real one', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: 30 })
  const vault = makeVault(t, redisStore(t, redis.url), { keys: [encryptionKey()], grant: providerGrant(provider) })
  const person = await signIn(provider, vault, 'slow-answer')
  provider.setTokenDelay(2_000)

  const token = await vault.accessToken(person.personId, { force: true })
  const record = await vault.load(person.personId)
  const { exp } = await provider.introspect(token)
  t.equal(record?.accessToken, token)
  t.ok(record!.expiresAt <= exp! * 1000, `the gateway's expiry (${record!.expiresAt}) is not after the provider's (${exp! * 1000})`)
})

t.test('the forced-refresh cooldown is per token: a 401 on a token the background just refreshed gets a new one', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: 60 })
  const vault = makeVault(t, redisStore(t, redis.url), { keys: [encryptionKey()], grant: providerGrant(provider), forceCooldownMs: 10_000 })
  const person = await signIn(provider, vault, 'forced-twice')
  const refused = await vault.accessToken(person.personId)

  const renewed = await vault.accessToken(person.personId, { force: true })
  t.not(renewed, refused, 'the refused token, only seconds old, was refreshed')
  t.equal(await vault.accessToken(person.personId, { force: true }), renewed, 'a 401 on the token a forced refresh just made does not refresh again (no 401 loop)')
  t.equal(refreshSummary(provider, person.sub).ok, 1, 'one grant in all')
})

t.test('30 s tokens with REFRESH_AHEAD 300 s: calls do not each spend a refresh grant', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: 30 })
  const vault = makeVault(t, redisStore(t, redis.url), {
    keys: [encryptionKey()],
    grant: providerGrant(provider),
    refreshAheadMs: 300_000,
    expiryMarginMs: undefined,
  })
  const person = await signIn(provider, vault, 'short-lived')
  const tokens = new Set<string>()
  for (let call = 0; call < 20; call++) {
    tokens.add(await vault.accessToken(person.personId))
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.equal(refreshSummary(provider, person.sub).ok, 0, 'no refresh for a token with most of its life left')
  t.equal(tokens.size, 1)
})

t.test('a replica dies holding the refresh lock: waiters get a token soon after its lock lapses, not after 30 s', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: 60 })
  const keys = [encryptionKey()]
  const grant = providerGrant(provider)
  // The production timings: a 5 s lock renewed by its owner, a 10 s provider timeout.
  const defaults = { lockTtlMs: undefined, providerTimeoutMs: undefined }
  const doomedStore = redisStore(t, redis.url)
  const hanging: RefreshGrant = async () => await new Promise<never>(() => {})
  const doomed = makeVault(t, doomedStore, { keys, grant: hanging, ...defaults })
  const survivor = makeVault(t, redisStore(t, redis.url), { keys, grant, ...defaults })
  const person = await signIn(provider, survivor, 'owner-died', Date.now() - 1)

  void doomed.accessToken(person.personId).catch(() => {})
  const lock = redis.client()
  t.ok(await waitFor(async () => await lock.get(`gemgate:person:${person.personId}:token-lock`) !== null, 5_000), 'the doomed replica holds the lock')
  // The process is gone: its connection with it, so nobody renews the lock.
  doomedStore.client.disconnect()

  const waited = await timed(survivor.accessToken(person.personId))
  t.ok(waited.value, `the waiter got a token (${waited.code ?? 'ok'})`)
  t.ok(waited.ms < 10_000 + 2_000, `within the provider timeout and a margin (${waited.ms} ms), not the old 30 s lock`)
  t.equal(refreshSummary(provider, person.sub).ok, 1)
})

t.test('a slow provider: the lock owner renews its lock, so nobody else spends the same rotating refresh token', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: 60, rotateRefreshTokens: true })
  const keys = [encryptionKey()]
  const grant = providerGrant(provider)
  const options = { keys, grant, lockTtlMs: 1_000, providerTimeoutMs: 6_000 }
  const vaults = [makeVault(t, redisStore(t, redis.url), options), makeVault(t, redisStore(t, redis.url), options)]
  const person = await signIn(provider, vaults[0]!, 'slow-and-locked', Date.now() - 1)
  provider.setTokenDelay(3_000)

  const answers = await Promise.all(vaults.map(async (vault) => await timed(vault.accessToken(person.personId))))
  t.same(answers.map((answer) => answer.code), [undefined, undefined], 'both replicas got a token')
  t.equal(answers[0]!.value, answers[1]!.value, 'the same one')
  t.same(refreshSummary(provider, person.sub), { ok: 1, failed: 0, reused: 0 }, 'one grant; the refresh token was never presented twice')
  t.ok(await vaults[1]!.load(person.personId), 'still signed in')
})

t.test('a provider slower than PROVIDER_TIMEOUT_SECONDS: requests get 503 near the timeout, the owner\'s and the waiter\'s', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: 60 })
  const keys = [encryptionKey()]
  const options = { keys, grant: providerGrant(provider), providerTimeoutMs: 1_500 }
  const vaults = [makeVault(t, redisStore(t, redis.url), options), makeVault(t, redisStore(t, redis.url), options)]
  const person = await signIn(provider, vaults[0]!, 'provider-too-slow', Date.now() - 1)
  provider.setTokenDelay(8_000)

  const answers = await Promise.all(vaults.map(async (vault) => await timed(vault.accessToken(person.personId))))
  t.same(answers.map((answer) => answer.code), ['GEMGATE_UNAVAILABLE', 'GEMGATE_UNAVAILABLE'], 'both answered 503')
  for (const answer of answers) t.ok(answer.ms < 1_500 + 2_000, `within the provider timeout and a margin (${answer.ms} ms)`)
  t.ok(await vaults[1]!.load(person.personId), 'still signed in: a timeout is transient')
})
