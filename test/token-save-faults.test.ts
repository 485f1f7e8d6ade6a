import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { personIdFor } from '../src/auth/person.js'
import { createRedisClient } from '../src/store/redis.js'
import type { RefreshGrant } from '../src/tokens/grant.js'
import { startFakeGemini } from './fixtures/gemini.js'
import { startProvider } from './fixtures/oidc.js'
import { startRedis } from './fixtures/redis.js'
import { ageTokens } from './helpers/person.js'
import { startStack } from './helpers/stack.js'
import {
  HookedStore, SCOPE, encryptionKey, makeVault, providerGrant, redisStore, refreshSummary, signIn, steadyCalls, waitFor,
} from './token-helpers.js'

// How long Redis refuses to write token records (locks stay writable).
const REFUSE_MS = 4_000
const isRecordKey = (key: string): boolean => key.endsWith(':tokens')

t.test('Redis refuses the write exactly when a rotated refresh is saved: the new tokens are kept, saved later, nobody is signed out', async (t) => {
  const redis = await startRedis(t)
  // Tokens outlive the fault: the new ones, held in memory, serve through it.
  const provider = await startProvider(t, { accessTokenTtlSeconds: 10, rotateRefreshTokens: true })
  const gemini = await startFakeGemini(t, { provider })
  const admin = redis.client()
  const grant = providerGrant(provider)
  let refusedAt = 0
  // The provider has rotated the refresh token; the gateway is about to save the answer. From
  // now on Redis (an ACL on the default user) lets every key be read but only locks be written.
  const refusingGrant: RefreshGrant = async (refreshToken) => {
    const result = await grant(refreshToken)
    if (refusedAt === 0) {
      refusedAt = Date.now()
      await admin.call('ACL', 'SETUSER', 'default', 'resetkeys', '%R~*', '%W~gemgate:person:*:token-lock')
      setTimeout(() => { void admin.call('ACL', 'SETUSER', 'default', 'resetkeys', '~*') }, REFUSE_MS).unref()
    }
    return result
  }
  const keys = [encryptionKey()]
  const first = makeVault(t, redisStore(t, redis.url), { keys, grant: refusingGrant })
  const second = makeVault(t, redisStore(t, redis.url), { keys, grant })
  const person = await signIn(provider, first, 'paused-at-save')
  first.start()
  t.ok(await waitFor(() => refusedAt !== 0, 10_000), 'the first refresh was granted, and Redis refused to save it')
  second.start()

  const end = refusedAt + REFUSE_MS + 10_000
  const report = await steadyCalls({ vaults: [first], people: [person], upstreamUrl: gemini.url, intervalMs: 100, until: () => Date.now() >= end })

  t.equal(report.unauthorized, 0, 'the upstream never saw an expired or refused token: the unsaved result was served from memory')
  t.same(report.vaultErrors, {}, 'the replica holding the unsaved result never failed a call')
  t.same({ ...refreshSummary(provider, person.sub), ok: 0 }, { ok: 0, failed: 0, reused: 0 }, 'no refresh token was spent twice (which revokes the grant)')
  t.ok(refreshSummary(provider, person.sub).ok >= 2, 'refreshing went on after the fault')
  const record = await second.load(person.personId)
  t.ok(record, 'still signed in')
  t.equal((await provider.introspect(record!.refreshToken!)).active, true, 'the stored refresh token is the live one')
})

/** Two replicas on one Redis: one refreshes through a hooked connection, the other (a sign-in or sign-out) lands inside it. */
async function refreshRace (t: Test, sub: string) {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: 60, rotateRefreshTokens: true })
  const keys = [encryptionKey()]
  const grant = providerGrant(provider)
  const hooked = new HookedStore(createRedisClient({ url: redis.url }))
  t.teardown(async () => { await hooked.close() })
  const refreshing = makeVault(t, hooked, { keys, grant })
  const other = makeVault(t, redisStore(t, redis.url), { keys, grant })
  const person = await signIn(provider, refreshing, sub)
  return { provider, hooked, refreshing, other, person }
}

t.test('a sign-in that lands between the refresh\'s read and its write is kept (compare-and-set)', async (t) => {
  const { provider, hooked, refreshing, other, person } = await refreshRace(t, 'signs-in-mid-refresh')
  let newSignIn = ''
  hooked.once('write', isRecordKey, async () => {
    const tokens = await provider.issueTokens({ user: person.sub, scope: SCOPE })
    newSignIn = tokens.access_token
    await other.save(person.personId, person.sub, { accessToken: tokens.access_token, refreshToken: tokens.refresh_token, expiresAt: Date.now() + 60_000 })
  })

  const served = await refreshing.accessToken(person.personId, { force: true })
  t.not(newSignIn, '', 'the sign-in landed inside the refresh')
  t.equal((await other.load(person.personId))?.accessToken, newSignIn, 'the stored tokens are the new sign-in\'s')
  t.equal(served, newSignIn, 'and the request got them')
})

t.test('a sign-out that lands between the refresh\'s read and its write stays signed out', async (t) => {
  const { hooked, refreshing, other, person } = await refreshRace(t, 'signs-out-mid-refresh')
  let signedOut = false
  hooked.once('write', isRecordKey, async () => {
    await other.delete(person.personId)
    signedOut = true
  })

  await t.rejects(refreshing.accessToken(person.personId, { force: true }), { code: 'GEMGATE_SIGN_IN_AGAIN' }, 'the request learns of the sign-out')
  t.ok(signedOut, 'the sign-out landed inside the refresh')
  t.equal(await other.load(person.personId), null, 'the refresh did not bring the record back')
})

t.test('a sign-in between the invalid_grant delete and its broadcast keeps its new session', async (t) => {
  let hooked: HookedStore | undefined
  const stack = await startStack(t, {
    store: (redis) => (hooked = new HookedStore(createRedisClient({ url: redis.url }))),
  })
  const before = await stack.signIn()
  const personId = personIdFor(stack.provider.issuer, stack.provider.defaultUser.sub)
  t.equal((await before.browser.fetch('/auth/me')).status, 200, 'signed in')
  // Old enough for a forced refresh to go to the provider, which refuses it.
  await ageTokens(stack, personId, 60_000)
  stack.provider.failRefreshFor(stack.provider.defaultUser.sub, 'invalid_grant')
  let after: Awaited<ReturnType<typeof stack.signIn>> | undefined
  hooked!.once('publish', (channel) => channel === 'person-signed-out', async () => {
    stack.provider.clearRefreshFailures()
    after = await stack.signIn()
  })

  await t.rejects(stack.app.vault.accessToken(personId, { force: true }), { code: 'GEMGATE_SIGN_IN_AGAIN' })
  t.ok(after, 'the new sign-in landed between the delete and the broadcast')
  t.ok(await waitFor(async () => (await before.browser.fetch('/auth/me')).status === 401, 5_000), 'the session of the lost refresh token ended')
  await sleep(300)
  t.equal((await after!.browser.fetch('/auth/me')).status, 200, 'the brand-new session was not ended by the late broadcast')
  t.ok(await stack.app.vault.load(personId), 'and its tokens are there')
})
