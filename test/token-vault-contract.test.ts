import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { Store } from '../src/store/store.js'
import { startProvider } from './fixtures/oidc.js'
import { startRedis } from './fixtures/redis.js'
import { encryptionKey, makeVault, memoryStore, providerGrant, redisStore, refreshSummary, signIn, waitFor, PUBLIC_URL } from './token-helpers.js'

// One contract, two Stores: the vault must behave the same in memory and on Redis.
const stores: Record<string, (t: Test) => Promise<Store>> = {
  memory: async (t) => memoryStore(t),
  redis: async (t) => redisStore(t, (await startRedis(t)).url),
}

const SIGN_IN_AGAIN = { statusCode: 401, code: 'GEMGATE_SIGN_IN_AGAIN', message: `Your sign-in has ended; sign in again at ${PUBLIC_URL}/auth/login` }
const recordKey = (personId: string): string => `person:${personId}:tokens`
const keyIdOf = (envelope: string): string => Buffer.from(envelope, 'base64url').subarray(1, 9).toString('hex')

for (const [kind, makeStore] of Object.entries(stores)) {
  t.test(`TokenVault contract on the ${kind} store`, async (t) => {
    const provider = await startProvider(t, { accessTokenTtlSeconds: 60 })
    const grant = providerGrant(provider)
    const keys = [encryptionKey()]
    const newVault = async (t: Test, options: Partial<Parameters<typeof makeVault>[2]> = {}) => {
      const store = await makeStore(t)
      return { store, vault: makeVault(t, store, { keys, grant, ...options }) }
    }

    t.test('save and load round-trip every field', async (t) => {
      const { vault } = await newVault(t)
      const person = await signIn(provider, vault, 'contract-roundtrip')
      const record = await vault.load(person.personId)
      t.match(record, { personId: person.personId, sub: 'contract-roundtrip', accessToken: String, refreshToken: String, expiresAt: Number, scope: /generative-language/ })
      t.equal(await vault.accessToken(person.personId), record!.accessToken, 'a valid token is served without a refresh')
      t.equal(refreshSummary(provider, 'contract-roundtrip').ok, 0)
      t.equal(await vault.load('nobody-0000000000000000000000000'), null)
    })

    t.test('raw input never names a key', async (t) => {
      const { vault } = await newVault(t)
      await t.rejects(vault.load('alice@example.com'), TypeError)
      await t.rejects(vault.accessToken('../../etc'), TypeError)
    })

    t.test('nothing readable is stored', async (t) => {
      const { store, vault } = await newVault(t)
      const person = await signIn(provider, vault, 'contract-opaque')
      const record = (await vault.load(person.personId))!
      const raw = (await store.get(recordKey(person.personId)))!
      for (const secret of [record.accessToken, record.refreshToken!, 'contract-opaque']) t.notOk(raw.includes(secret))
    })

    t.test('delete signs out: load is null and accessToken asks to sign in again', async (t) => {
      const { vault } = await newVault(t)
      const person = await signIn(provider, vault, 'contract-delete')
      await vault.delete(person.personId)
      t.equal(await vault.load(person.personId), null)
      await t.rejects(vault.accessToken(person.personId), SIGN_IN_AGAIN)
    })

    t.test('an expired token is refreshed on demand, once for concurrent callers', async (t) => {
      const { vault } = await newVault(t)
      const person = await signIn(provider, vault, 'contract-ondemand', Date.now() - 1)
      const before = (await vault.load(person.personId))!
      const tokens = await Promise.all(Array.from({ length: 20 }, async () => await vault.accessToken(person.personId)))
      t.equal(new Set(tokens).size, 1, 'everyone got the same new token')
      t.not(tokens[0], before.accessToken)
      t.equal(refreshSummary(provider, 'contract-ondemand').ok, 1, 'one refresh grant')
      const after = (await vault.load(person.personId))!
      t.ok(after.expiresAt > Date.now() + 50_000)
      t.ok(after.lastRefreshAt !== undefined && after.lastRefreshError === undefined)
      t.equal((await provider.introspect(tokens[0]!)).active, true)
    })

    t.test('force refreshes a token that still looks valid (after an upstream 401)', async (t) => {
      const { vault } = await newVault(t)
      const person = await signIn(provider, vault, 'contract-force')
      const old = await vault.accessToken(person.personId)
      const [first, second] = await Promise.all([vault.accessToken(person.personId, { force: true }), vault.accessToken(person.personId, { force: true })])
      t.not(first, old)
      t.equal(first, second)
      t.equal(refreshSummary(provider, 'contract-force').ok, 1)
    })

    t.test('a rotated refresh token replaces the old one', async (t) => {
      const { vault } = await newVault(t)
      provider.setRotateRefreshTokens(true)
      t.teardown(() => provider.setRotateRefreshTokens(false))
      const person = await signIn(provider, vault, 'contract-rotate', Date.now() - 1)
      const before = (await vault.load(person.personId))!
      await vault.accessToken(person.personId)
      const after = (await vault.load(person.personId))!
      t.not(after.refreshToken, before.refreshToken)
      t.equal((await provider.introspect(after.refreshToken!)).active, true)
      t.equal((await provider.introspect(before.refreshToken!)).active, false)
    })

    t.test('invalid_grant signs the person out and tells listeners; others are untouched', async (t) => {
      const { vault } = await newVault(t)
      const signedOut: string[] = []
      await vault.onSignedOut((personId) => signedOut.push(personId))
      const gone = await signIn(provider, vault, 'contract-revoked', Date.now() - 1)
      const kept = await signIn(provider, vault, 'contract-kept', Date.now() - 1)
      provider.failRefreshFor('contract-revoked', 'invalid_grant')
      t.teardown(() => provider.clearRefreshFailures('contract-revoked'))
      await t.rejects(vault.accessToken(gone.personId), SIGN_IN_AGAIN)
      t.equal(await vault.load(gone.personId), null)
      await t.resolves(vault.accessToken(kept.personId))
      for (let i = 0; i < 50 && signedOut.length === 0; i++) await sleep(20)
      t.same(signedOut, [gone.personId])
    })

    t.test('provider errors keep the tokens: the valid token serves, an expired one is 503', async (t) => {
      const { vault } = await newVault(t, { expiryMarginMs: 5_000 })
      // A 6 s token: the on-demand margin is a quarter of its lifetime, 1.5 s.
      const expiresAt = Date.now() + 6_000
      const person = await signIn(provider, vault, 'contract-outage', expiresAt)
      const before = (await vault.load(person.personId))!
      provider.failRefreshFor('contract-outage', 'server_error')
      t.teardown(() => provider.clearRefreshFailures('contract-outage'))
      await sleep(expiresAt - 1_400 - Date.now())
      t.equal(await vault.accessToken(person.personId), before.accessToken, 'still valid: served while the refresh failed')
      const failed = (await vault.load(person.personId))!
      t.equal(failed.refreshToken, before.refreshToken)
      t.match(failed.lastRefreshError, /HTTP 500/)
      await sleep(expiresAt - 1_000 - Date.now())
      await t.rejects(vault.accessToken(person.personId), { statusCode: 503, code: 'GEMGATE_UNAVAILABLE' })
      provider.clearRefreshFailures('contract-outage')
      // Requests wait out the refresh backoff (no call to the provider before it), then refresh.
      t.ok(await waitFor(async () => await vault.accessToken(person.personId).then(() => true, () => false), 2_000, 50))
      const fresh = await vault.accessToken(person.personId)
      t.not(fresh, before.accessToken)
      t.equal((await vault.load(person.personId))!.lastRefreshError, undefined)
    })

    t.test('the background refresher renews a token before it expires', async (t) => {
      const { vault } = await newVault(t, { refreshAheadMs: 2_000, jitterMs: 100 })
      const person = await signIn(provider, vault, 'contract-background', Date.now() + 2_500)
      const before = (await vault.load(person.personId))!
      vault.start()
      let after = before
      for (let i = 0; i < 100 && after.accessToken === before.accessToken; i++) {
        await sleep(50)
        after = (await vault.load(person.personId))!
      }
      t.not(after.accessToken, before.accessToken)
      t.ok(after.lastRefreshAt! < before.expiresAt, 'refreshed before the old token expired')
      t.equal(refreshSummary(provider, 'contract-background').ok, 1)
    })

    t.test('keys rotate: old records stay readable and are re-encrypted at their next write', async (t) => {
      const [oldKey, newKey] = [encryptionKey(), encryptionKey()]
      const store = await makeStore(t)
      const before = makeVault(t, store, { keys: [oldKey], grant })
      const person = await signIn(provider, before, 'contract-keys', Date.now() - 1)
      const oldId = keyIdOf((await store.get(recordKey(person.personId)))!)

      const rotated = makeVault(t, store, { keys: [newKey, oldKey], grant })
      t.ok(await rotated.load(person.personId), 'readable under the retired key')
      await rotated.accessToken(person.personId)
      const newId = keyIdOf((await store.get(recordKey(person.personId)))!)
      t.not(newId, oldId, 're-encrypted under the new first key')

      const reordered = makeVault(t, store, { keys: [oldKey, newKey], grant })
      t.ok(await reordered.load(person.personId), 'reordering keeps it readable')
      const retired = makeVault(t, store, { keys: [oldKey], grant })
      t.equal(await retired.load(person.personId), null, 'a removed key no longer opens it')
    })

    t.test('records cannot be swapped between people', async (t) => {
      const { store, vault } = await newVault(t)
      const alice = await signIn(provider, vault, 'contract-swap-a')
      const bob = await signIn(provider, vault, 'contract-swap-b')
      await store.set(recordKey(bob.personId), (await store.get(recordKey(alice.personId)))!)
      t.equal(await vault.load(bob.personId), null)
      await t.rejects(vault.accessToken(bob.personId), SIGN_IN_AGAIN)
    })
  })
}

