import t, { type Test } from 'tap'
import { personIdFor } from '../src/auth/person.js'
import type { RefreshGrant } from '../src/tokens/grant.js'
import { StoreTokenVault } from '../src/tokens/store-vault.js'
import { startFakeGemini } from './fixtures/gemini.js'
import { startProvider } from './fixtures/oidc.js'
import { startRedis } from './fixtures/redis.js'
import {
  PUBLIC_URL, SCOPE, doubleRefreshes, encryptionKey, makeVault, providerGrant, redisStore, refreshSummary, signIn, steadyCalls, waitFor,
  type Person, type TestVaultOptions,
} from './token-helpers.js'

const LIFETIME_SECONDS = 5
const STEADY_MS = 15_000

/** Three gateway replicas: each its own vault, refresher and Redis connection, one Redis. */
function replicas (t: Test, redisUrl: string, options: TestVaultOptions, count = 3): StoreTokenVault[] {
  return Array.from({ length: count }, () => makeVault(t, redisStore(t, redisUrl), options))
}

t.test('three replicas, rotating refresh tokens: one refresh per token, none spent twice, nobody signed out', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: LIFETIME_SECONDS, rotateRefreshTokens: true })
  const gemini = await startFakeGemini(t, { provider })
  const vaults = replicas(t, redis.url, { keys: [encryptionKey()], grant: providerGrant(provider) })
  const people = await Promise.all(['replica-1', 'replica-2', 'replica-3', 'replica-4'].map(async (sub) => await signIn(provider, vaults[0]!, sub)))
  for (const vault of vaults) vault.start()

  const end = Date.now() + STEADY_MS
  const report = await steadyCalls({ vaults, people, upstreamUrl: gemini.url, intervalMs: 100, until: () => Date.now() >= end })

  t.equal(report.unauthorized, 0, 'no call saw an expired token')
  t.same(report.vaultErrors, {}, 'the vault never failed a call')
  for (const person of people) {
    const summary = refreshSummary(provider, person.sub)
    t.comment(`${person.sub}: ${summary.ok} refreshes in ${STEADY_MS / 1000} s across three replicas`)
    t.same({ failed: summary.failed, reused: summary.reused }, { failed: 0, reused: 0 }, 'no refresh token spent twice, no grant refused')
    t.equal(doubleRefreshes(provider, person.sub, 1_000), 0, 'never two refreshes of one token')
    t.ok(summary.ok >= STEADY_MS / 1000 / LIFETIME_SECONDS, 'refreshed every lifetime')
    t.ok(await vaults[2]!.load(person.personId), 'still signed in')
  }
})

t.test('a replica killed in the middle of a refresh: its lock expires and the others carry on', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: LIFETIME_SECONDS })
  const gemini = await startFakeGemini(t, { provider })
  const keys = [encryptionKey()]
  const grant = providerGrant(provider)
  const timings = { lockTtlMs: 1_000 }

  // The doomed replica: its first refresh reaches the provider, then the process "dies".
  const doomedStore = redisStore(t, redis.url)
  let killedAt = 0
  let doomed: StoreTokenVault | undefined
  const dyingGrant: RefreshGrant = async (refreshToken) => {
    const result = await grant(refreshToken)
    if (killedAt === 0) {
      killedAt = Date.now()
      void doomed!.stop()
      doomedStore.client.disconnect()
      return await new Promise<never>(() => {})
    }
    return result
  }
  doomed = new StoreTokenVault(doomedStore, { publicUrl: PUBLIC_URL, refreshAheadMs: 2_000, pollIntervalMs: 50, jitterMs: 0, keys, grant: dyingGrant, ...timings })
  const survivors = replicas(t, redis.url, { keys, grant, ...timings }, 2)

  const person = await signIn(provider, survivors[0]!, 'killed-mid-refresh')
  doomed.start()
  t.ok(await waitFor(() => killedAt !== 0, 10_000), 'the doomed replica took the refresh and died')
  for (const vault of survivors) vault.start()

  const end = Date.now() + 12_000
  const report = await steadyCalls({ vaults: survivors, people: [person], upstreamUrl: gemini.url, intervalMs: 100, until: () => Date.now() >= end })
  const after = provider.refreshGrantsFor(person.sub).filter((grant) => grant.success && grant.at > killedAt)
  t.ok(after.length >= 2, `the survivors refreshed ${after.length} times after the kill`)
  t.same(report.vaultErrors, {}, 'no call failed')
  t.comment(`calls after the kill: ${report.calls}, refused by the upstream: ${report.unauthorized}`)
  t.ok(await survivors[1]!.load(person.personId), 'still signed in')
})

t.test('200 people due at once: all refreshed inside their window, concurrency bounded', async (t) => {
  const PEOPLE = 200
  const CONCURRENCY = 4
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: 60 })
  const providerCall = providerGrant(provider)
  // What reaches the provider: refresh grants in flight at once, over all replicas.
  let inFlight = 0
  let maxInFlight = 0
  const grant: RefreshGrant = async (refreshToken) => {
    maxInFlight = Math.max(maxInFlight, ++inFlight)
    try {
      return await providerCall(refreshToken)
    } finally {
      inFlight--
    }
  }
  const keys = [encryptionKey()]
  const maxPerReplica = [0, 0, 0]
  const vaults = [0, 1, 2].map((index) => makeVault(t, redisStore(t, redis.url), {
    keys,
    grant,
    concurrency: CONCURRENCY,
    refreshAheadMs: 6_000,
    jitterMs: 0,
    observer: { refreshed: () => {}, inFlight: (count) => { maxPerReplica[index] = Math.max(maxPerReplica[index]!, count) } },
  }))

  const issued = []
  for (let batch = 0; batch < PEOPLE; batch += 10) {
    issued.push(...await Promise.all(Array.from({ length: 10 }, async (_, offset) => {
      const sub = `crowd-${batch + offset}`
      provider.addUser({ sub, email: `${sub}@example.com` })
      return { sub, tokens: await provider.issueTokens({ user: sub, scope: SCOPE }) }
    })))
  }
  // Saved together with one expiry, so all fall due at the same instant, 6 s before it.
  const expiresAt = Date.now() + 12_000
  const people: Person[] = []
  for (const { sub, tokens } of issued) {
    const personId = personIdFor(provider.issuer, sub)
    await vaults[0]!.save(personId, sub, { accessToken: tokens.access_token, refreshToken: tokens.refresh_token, expiresAt, scope: tokens.scope })
    people.push({ sub, personId })
  }
  const grantsBefore = provider.grants.length
  for (const vault of vaults) vault.start()

  const refreshed = async (): Promise<number> => {
    const records = await Promise.all(people.map(async (person) => await vaults[1]!.load(person.personId)))
    return records.filter((record) => record?.lastRefreshAt !== undefined).length
  }
  t.ok(await waitFor(async () => await refreshed() === PEOPLE, 20_000, 200), 'everyone was refreshed')
  const grants = provider.grants.slice(grantsBefore)
  t.equal(grants.length, PEOPLE, 'exactly one refresh grant per person')
  t.equal(new Set(grants.map((grant) => grant.sub)).size, PEOPLE)
  t.ok(grants.every((grant) => grant.success && grant.grantType === 'refresh_token'))
  t.ok(grants.every((grant) => grant.at < expiresAt), 'every refresh landed before the old token expired')
  const times = grants.map((grant) => grant.at - expiresAt)
  t.comment(`refresh grants from ${Math.min(...times)} ms to ${Math.max(...times)} ms relative to the old expiry`)
  t.comment(`max in flight at the provider: ${maxInFlight}; per replica: ${maxPerReplica.join(', ')}`)
  t.ok(maxInFlight <= 3 * CONCURRENCY, `the provider never saw more than ${3 * CONCURRENCY} refreshes at once`)
  t.ok(maxPerReplica.every((max) => max <= CONCURRENCY && max > 0), `each replica ran at most ${CONCURRENCY} at once, and took part`)
})

