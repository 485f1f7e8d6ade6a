import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startFakeGemini } from './fixtures/gemini.js'
import { startProvider } from './fixtures/oidc.js'
import { startRedis } from './fixtures/redis.js'
import { encryptionKey, makeVault, providerGrant, redisStore, refreshSummary, signIn, steadyCalls, waitFor } from './token-helpers.js'

const LIFETIME_SECONDS = 5

t.test('provider down for 10 s: valid tokens keep serving, refreshing resumes, no refresh token lost', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: LIFETIME_SECONDS, rotateRefreshTokens: true })
  const gemini = await startFakeGemini(t, { provider })
  const keys = [encryptionKey()]
  const grant = providerGrant(provider)
  const vaults = [0, 1].map(() => makeVault(t, redisStore(t, redis.url), { keys, grant, backoffBaseMs: 200, backoffMaxMs: 1_000 }))
  const people = await Promise.all(['outage-1', 'outage-2', 'outage-3'].map(async (sub) => await signIn(provider, vaults[0]!, sub)))
  for (const vault of vaults) vault.start()

  const phases = { down: 0, up: 0, end: 0 }
  const calls = steadyCalls({ vaults, people, upstreamUrl: gemini.url, intervalMs: 100, until: () => phases.end !== 0 && Date.now() >= phases.end })
  await sleep(4_000)
  await provider.stop()
  phases.down = Date.now()
  await sleep(10_000)
  await provider.start()
  phases.up = Date.now()
  phases.end = phases.up + 8_000
  const report = await calls

  t.equal(report.unauthorized, 0, 'no call reached the upstream with an expired token')
  t.same(Object.keys(report.vaultErrors).filter((code) => code !== 'GEMGATE_UNAVAILABLE'), [], 'the only failure is 503 while tokens are expired')
  const during = report.timeline.filter((call) => call.at > phases.down && call.at < phases.down + 1_000)
  t.ok(during.length > 0 && during.every((call) => call.outcome === 'ok'), 'calls kept working right after the provider went down')
  const settled = report.timeline.filter((call) => call.at > phases.up + 3_000)
  t.ok(settled.length > 0 && settled.every((call) => call.outcome === 'ok'), 'calls work again once the provider is back')
  t.comment(`503s while the provider was down: ${report.vaultErrors.GEMGATE_UNAVAILABLE ?? 0} of ${report.calls} calls`)

  for (const person of people) {
    const grants = provider.refreshGrantsFor(person.sub)
    t.ok(grants.some((grant) => grant.success && grant.at > phases.up), `${person.sub} refreshed after the outage`)
    t.same({ ...refreshSummary(provider, person.sub), ok: 0 }, { ok: 0, failed: 0, reused: 0 }, 'no refresh token was spent twice or refused')
    const record = await vaults[1]!.load(person.personId)
    t.ok(record, 'still signed in')
    t.equal((await provider.introspect(record!.refreshToken!)).active, true, 'the stored refresh token is the live one')
  }
})

t.test('invalid_grant for one person: that person must sign in again, the others are untouched', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: LIFETIME_SECONDS })
  const gemini = await startFakeGemini(t, { provider })
  const keys = [encryptionKey()]
  const grant = providerGrant(provider)
  const vaults = [0, 1].map(() => makeVault(t, redisStore(t, redis.url), { keys, grant }))
  const heard: string[][] = [[], []]
  await Promise.all(vaults.map(async (vault, index) => { await vault.onSignedOut((personId) => heard[index]!.push(personId)) }))
  const [victim, ...others] = await Promise.all(['revoked', 'bystander-1', 'bystander-2'].map(async (sub) => await signIn(provider, vaults[0]!, sub)))
  provider.failRefreshFor('revoked', 'invalid_grant')
  for (const vault of vaults) vault.start()

  const end = Date.now() + 10_000
  const report = await steadyCalls({ vaults, people: [victim!, ...others], upstreamUrl: gemini.url, intervalMs: 100, until: () => Date.now() >= end })

  t.equal(report.unauthorized, 0, 'the upstream never saw an expired token')
  const victimCalls = report.timeline.filter((call) => call.sub === 'revoked')
  const firstRefusal = victimCalls.findIndex((call) => call.outcome === 'GEMGATE_SIGN_IN_AGAIN')
  t.ok(firstRefusal > 0, 'the person worked until the refresh was refused')
  t.ok(victimCalls.slice(firstRefusal).every((call) => call.outcome === 'GEMGATE_SIGN_IN_AGAIN'), 'then every call asks them to sign in again')
  await t.rejects(vaults[1]!.accessToken(victim!.personId), { statusCode: 401, message: /sign in again at http:\/\/127\.0\.0\.1:8080\/auth\/login/ })
  t.equal(await vaults[0]!.load(victim!.personId), null, 'the record is gone')
  t.same(refreshSummary(provider, 'revoked'), { ok: 0, failed: 1, reused: 0 }, 'the refused grant was not retried')
  t.same(heard, [[victim!.personId], [victim!.personId]], 'both replicas heard of the sign-out')

  const bystanderCalls = report.timeline.filter((call) => call.sub !== 'revoked')
  t.ok(bystanderCalls.every((call) => call.outcome === 'ok'), 'the others never noticed')
  for (const person of others) t.ok(refreshSummary(provider, person.sub).ok >= 1)
})

t.test('a dump of every Redis key and value holds no token in plaintext', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: 60, rotateRefreshTokens: true })
  const vault = makeVault(t, redisStore(t, redis.url), { keys: [encryptionKey()], grant: providerGrant(provider) })
  const people = await Promise.all(['dump-1', 'dump-2', 'dump-3'].map(async (sub) => await signIn(provider, vault, sub)))
  const served = new Set<string>()
  for (const person of people) {
    served.add((await vault.load(person.personId))!.accessToken)
    for (let i = 0; i < 3; i++) served.add(await vault.accessToken(person.personId, { force: true }))
  }

  const secrets = new Set(served)
  for (const grant of provider.grants) {
    if (grant.refreshTokenIssued !== undefined) secrets.add(grant.refreshTokenIssued)
    if (grant.refreshTokenUsed !== undefined) secrets.add(grant.refreshTokenUsed)
  }
  t.ok(secrets.size >= 3 * 4 + 3 * 4, `${secrets.size} access and refresh tokens issued`)

  const client = redis.client()
  const dump: string[] = []
  for (const key of await client.keys('*')) {
    const type = await client.type(key)
    const values = type === 'string' ? [await client.get(key) ?? '']
      : type === 'zset' ? await client.zrange(key, '0', '-1', 'WITHSCORES')
        : type === 'set' ? await client.smembers(key)
          : type === 'hash' ? Object.entries(await client.hgetall(key)).flat()
            : [`<${type}>`]
    dump.push(key, ...values)
  }
  const text = dump.join('\n')
  t.ok(dump.length > 0)
  t.same([...secrets].filter((secret) => text.includes(secret)), [], 'no token appears in the dump')
  t.same(people.filter((person) => text.includes(person.sub)), [], 'no raw subject either')
  t.ok(people.every((person) => text.includes(person.personId)), 'keys are named by the hashed person id')
})

t.test('rotating and reordering the encryption keys keeps every record readable', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: 4 })
  const grant = providerGrant(provider)
  const [oldKey, newKey] = [encryptionKey(), encryptionKey()]
  const client = redis.client()
  const keyIds = async (): Promise<Set<string>> => {
    const keys = await client.keys('gemgate:person:*:tokens')
    return new Set(await Promise.all(keys.map(async (key) => Buffer.from((await client.get(key))!, 'base64url').subarray(1, 9).toString('hex'))))
  }

  const before = makeVault(t, redisStore(t, redis.url), { keys: [oldKey], grant })
  const people = await Promise.all(Array.from({ length: 5 }, async (_, index) => await signIn(provider, before, `rotate-${index}`)))
  const [oldId] = await keyIds()

  const rotated = makeVault(t, redisStore(t, redis.url), { keys: [newKey, oldKey], grant })
  for (const person of people) t.ok(await rotated.load(person.personId), 'readable right after the new key was put first')
  rotated.start()
  t.ok(await waitFor(async () => !(await keyIds()).has(oldId!), 10_000), 'each record was re-encrypted at its next write (the refresh)')
  t.equal((await keyIds()).size, 1)
  await rotated.stop()

  const reordered = makeVault(t, redisStore(t, redis.url), { keys: [oldKey, newKey], grant })
  const retired = makeVault(t, redisStore(t, redis.url), { keys: [newKey], grant })
  for (const person of people) {
    t.ok(await reordered.load(person.personId), 'readable with the keys reordered')
    t.ok(await retired.load(person.personId), 'readable once the old key is retired')
    t.ok(await retired.accessToken(person.personId))
  }
})
