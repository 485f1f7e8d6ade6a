import { Writable } from 'node:stream'
import { pino } from 'pino'
import t from 'tap'
import type { RefreshGrant } from '../src/tokens/grant.js'
import type { RefreshResult } from '../src/tokens/refresher.js'
import { startProvider } from './fixtures/oidc.js'
import { startRedis } from './fixtures/redis.js'
import { startStack } from './helpers/stack.js'
import { encryptionKey, makeVault, providerGrant, redisStore, signIn, waitFor } from './token-helpers.js'

/** Counts the refresh grants that reach for the provider (answered or not). */
function countingGrant (grant: RefreshGrant): { grant: RefreshGrant, calls: () => number } {
  let calls = 0
  return { grant: async (refreshToken) => { calls++; return await grant(refreshToken) }, calls: () => calls }
}

t.test('the provider is down and tokens have expired: requests get 503 without calling it until the backoff has passed', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: 60 })
  const counted = countingGrant(providerGrant(provider))
  const keys = [encryptionKey()]
  const options = { keys, grant: counted.grant, backoffBaseMs: 1_000, backoffMaxMs: 2_000 }
  const vaults = [makeVault(t, redisStore(t, redis.url), options), makeVault(t, redisStore(t, redis.url), options)]
  const person = await signIn(provider, vaults[0]!, 'backoff', Date.now() - 1)
  await provider.stop()

  const outcomes: Record<string, number> = {}
  const end = Date.now() + 5_000
  for (let turn = 0; Date.now() < end; turn++) {
    const code = await vaults[turn % 2]!.accessToken(person.personId).then(() => 'ok', (error: { code?: string }) => error.code ?? String(error))
    outcomes[code] = (outcomes[code] ?? 0) + 1
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.same(Object.keys(outcomes), ['GEMGATE_UNAVAILABLE'], 'every request got 503')
  t.comment(`${outcomes.GEMGATE_UNAVAILABLE} requests, ${counted.calls()} refresh attempts in 5 s`)
  t.ok(counted.calls() <= 8, `the refresh attempts followed the backoff (${counted.calls()}), not the requests`)

  await provider.start()
  t.ok(await waitFor(async () => await vaults[1]!.accessToken(person.personId).then(() => true, () => false), 5_000, 100), 'a request after the backoff refreshes again')
})

t.test('invalid_client (a wrong client secret in a deploy): nobody is signed out, 503 and an alert, recovery once fixed', async (t) => {
  const redis = await startRedis(t)
  const provider = await startProvider(t, { accessTokenTtlSeconds: 60 })
  const keys = [encryptionKey()]
  const lines: string[] = []
  const log = pino({ level: 'info' }, new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } }))
  const results: RefreshResult[] = []
  const broken = makeVault(t, redisStore(t, redis.url), {
    keys,
    grant: providerGrant(provider, 'not-the-client-secret'),
    log,
    observer: { refreshed: (result) => results.push(result) },
  })
  const heard: string[] = []
  await broken.onSignedOut((personId) => heard.push(personId))
  const person = await signIn(provider, broken, 'bad-deploy', Date.now() - 1)

  await t.rejects(broken.accessToken(person.personId), { statusCode: 503, code: 'GEMGATE_UNAVAILABLE' }, '503, not "sign in again"')
  t.same(results, ['invalid_client'], 'counted as a configuration failure')
  const alert = lines.map((line) => JSON.parse(line) as { level: number, result?: string, cause?: string }).find((line) => line.result === 'invalid_client')
  t.equal(alert?.level, 50, 'logged at error level')
  t.equal(alert?.cause, 'configuration')
  t.ok(await broken.load(person.personId), 'the record is kept')
  t.same(heard, [], 'no sign-out was announced')

  // The deploy is fixed: a replica with the right secret serves the same record.
  const fixed = makeVault(t, redisStore(t, redis.url), { keys, grant: providerGrant(provider) })
  t.ok(await waitFor(async () => await fixed.accessToken(person.personId).then(() => true, () => false), 5_000, 100), 'the person is served again without signing in')
})

t.test('/metrics token gauges are not stale while Redis is down', async (t) => {
  const stack = await startStack(t)
  await stack.signIn()
  const gauge = async (name: string): Promise<string | undefined> => {
    const text = await (await fetch(`${stack.url}/metrics`)).text()
    return new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]
  }
  t.equal(await gauge('gemgate_tokens_held'), '1')
  await stack.redis!.stop()
  // prom-client writes NaN as "Nan", which Prometheus parses (case-insensitively) as NaN.
  t.match(await gauge('gemgate_tokens_held'), /^nan$/i, 'unknown while the store does not answer, not the last count')
  t.match(await gauge('gemgate_token_soonest_expiry_seconds'), /^nan$/i)
})
