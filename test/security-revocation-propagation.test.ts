import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { buildApp } from '../src/app.js'
import { createRedisClient, RedisStore } from '../src/store/redis.js'
import type { Store } from '../src/store/store.js'
import { freePort } from './fixtures/ports.js'
import { ageTokens, signInWithKey, startProxyStack, type KeyHolder, type ProxyStack } from './helpers/person.js'
import type { Browser } from './helpers/stack.js'

// Replicas cache who a credential is and the person's access token, so the steady state costs
// no Redis round trip. These tests hold them to the promise that makes that safe: a change on
// one replica reaches every other replica's caches within a second.

const MODEL_PATH = '/v1beta/models/gemini-2.5-flash'
/** How often, and how many times, replica B is asked after a change on A: about one second. */
const POLL_INTERVAL_MS = 100
const POLLS = 10

interface Replica {
  url: string
  /** Store reads (GET, PEXPIRE) replica B made so far. */
  reads: () => number
}

/** The store reads a request can make on its way through; background work uses other verbs. */
const READS = new Set(['get', 'expire', 'setMembers'])

/** A Store that counts the reads made through it. */
function counting (store: RedisStore): { store: Store, reads: () => number } {
  let reads = 0
  const proxy = new Proxy(store, {
    get (target, name, receiver) {
      const value = Reflect.get(target, name, receiver) as unknown
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        if (READS.has(String(name))) reads++
        return (value as (...args: unknown[]) => unknown).apply(target, args)
      }
    },
  })
  return { store: proxy, reads: () => reads }
}

/** A second gateway on the same Redis with the same settings, as behind a load balancer. */
async function replicaOf (t: Test, stack: ProxyStack): Promise<Replica> {
  const redis = new RedisStore(createRedisClient({ url: stack.redis!.url }))
  const { store, reads } = counting(redis)
  const app = await buildApp(stack.config, { store })
  t.teardown(async () => {
    await app.close()
    await redis.close()
  })
  const port = await freePort()
  await app.listen({ port, host: '127.0.0.1' })
  return { url: `http://127.0.0.1:${port}`, reads }
}

/** Asks until the answer is `status`, at most POLLS times over about a second; the last status seen. */
async function pollUntil (status: number, call: () => Promise<Response>): Promise<number> {
  let seen = 0
  for (let poll = 0; poll < POLLS; poll++) {
    const response = await call()
    await response.arrayBuffer()
    seen = response.status
    if (seen === status) return seen
    await sleep(POLL_INTERVAL_MS)
  }
  return seen
}

/**
 * The holder's three credentials as request headers: their gateway key, their session cookie,
 * and an X-Gemgate-Assertion as the gateway gives the fronted app, for its backend to present.
 */
async function credentialsOf (stack: ProxyStack, holder: KeyHolder & { browser: Browser }): Promise<Record<'key' | 'cookie' | 'assertion', Record<string, string>>> {
  const profile = await stack.app.profiles.load(holder.personId)
  if (profile === null) throw new Error('no profile for the holder')
  return {
    key: { 'x-goog-api-key': holder.key },
    cookie: { cookie: holder.browser.cookieHeader() },
    assertion: { 'x-goog-api-key': await stack.app.assertions.issue(profile) },
  }
}

async function status (url: string, headers: Record<string, string>): Promise<number> {
  const response = await fetch(url, { headers })
  await response.arrayBuffer()
  return response.status
}

t.test('steady-state calls on a replica are served from its caches: no store read', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const b = await replicaOf(t, stack)
  const { key, cookie, assertion } = await credentialsOf(stack, holder)
  t.equal(await status(`${b.url}${MODEL_PATH}`, key), 200, 'a key works on B')
  t.equal(await status(`${b.url}${MODEL_PATH}`, cookie), 200, 'the session works on B')
  t.equal(await status(`${b.url}${MODEL_PATH}`, assertion), 200, 'an assertion works on B')
  const before = b.reads()
  for (let call = 0; call < 5; call++) {
    t.equal(await status(`${b.url}${MODEL_PATH}`, key), 200)
    t.equal(await status(`${b.url}${MODEL_PATH}`, cookie), 200)
    t.equal(await status(`${b.url}${MODEL_PATH}`, assertion), 200)
  }
  t.equal(b.reads() - before, 0, 'fifteen calls, no store read')
})

t.test('a key revoked on replica A is refused by replica B within a second', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const b = await replicaOf(t, stack)
  const callB = async () => await fetch(`${b.url}${MODEL_PATH}`, { headers: { 'x-goog-api-key': holder.key } })
  t.equal((await callB()).status, 200, 'B knows the key (and caches it)')
  const revoked = await holder.browser.fetch(`/auth/keys/${holder.keyId}`, { method: 'DELETE', headers: { origin: stack.url } })
  t.equal(revoked.status, 204)
  t.equal(await pollUntil(401, callB), 401, 'B refuses it')
  t.equal((await callB()).status, 401, 'and keeps refusing it')
  t.equal(stack.gemini.requests.length, 1, 'only the call before revocation went upstream')
})

t.test('a person signed out on replica A is refused by replica B within a second, key, session and assertion alike', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const b = await replicaOf(t, stack)
  const { key, cookie, assertion } = await credentialsOf(stack, holder)
  t.equal(await status(`${b.url}${MODEL_PATH}`, key), 200)
  t.equal(await status(`${b.url}${MODEL_PATH}`, cookie), 200)
  t.equal(await status(`${b.url}${MODEL_PATH}`, assertion), 200)
  const logout = await holder.browser.fetch('/auth/logout', { method: 'POST', headers: { origin: stack.url } })
  t.equal(logout.status, 204)
  t.equal(await pollUntil(401, async () => await fetch(`${b.url}${MODEL_PATH}`, { headers: key })), 401, 'B refuses the key')
  t.equal(await pollUntil(401, async () => await fetch(`${b.url}${MODEL_PATH}`, { headers: cookie })), 401, 'B refuses the session')
  t.equal(await pollUntil(401, async () => await fetch(`${b.url}${MODEL_PATH}`, { headers: assertion })), 401, 'B refuses the assertion')
  t.equal(stack.gemini.requests.length, 3, 'only the calls before sign-out went upstream')
})

t.test('a token refreshed on replica A is the one replica B sends next', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const b = await replicaOf(t, stack)
  const key = { 'x-goog-api-key': holder.key }
  t.equal(await status(`${b.url}${MODEL_PATH}`, key), 200, 'B caches the current token')
  const old = stack.gemini.requests.at(-1)!.token
  await ageTokens(stack, holder.personId, 60_000)
  // The upstream refuses A's call once: A refreshes the token and retries.
  stack.gemini.fault({ kind: 'unauthorized' })
  t.equal(await status(`${stack.url}${MODEL_PATH}`, key), 200)
  const fresh = (await stack.app.vault.load(holder.personId))!.accessToken
  t.not(fresh, old, 'A refreshed')
  let sent: string | undefined
  for (let poll = 0; poll < POLLS && sent !== fresh; poll++) {
    if (poll > 0) await sleep(POLL_INTERVAL_MS)
    t.equal(await status(`${b.url}${MODEL_PATH}`, key), 200)
    sent = stack.gemini.requests.at(-1)!.token
  }
  t.equal(sent, fresh, 'B sends the refreshed token')
})
