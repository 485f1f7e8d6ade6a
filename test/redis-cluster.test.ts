import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { freePort } from './fixtures/ports.js'
import { startRedisCluster } from './fixtures/redis-topologies.js'
import { ageTokens, signInWithKey, startProxyStack } from './helpers/person.js'

const MODEL_PATH = '/v1beta/models/gemini-2.5-flash'
/** Longest a change on one replica may take to reach the other; not a speed assertion. */
const PROPAGATION_MS = 2_000

async function statusWithin (expected: number, call: () => Promise<Response>): Promise<number> {
  const deadline = Date.now() + PROPAGATION_MS
  let status = 0
  do {
    const response = await call()
    await response.arrayBuffer()
    status = response.status
    if (status === expected) return status
    await sleep(50)
  } while (Date.now() < deadline)
  return status
}

t.test('two replicas on a Redis Cluster of three masters', async (t) => {
  const cluster = await startRedisCluster(t)
  // memory: no standalone Redis for the stack; REDIS_CLUSTER_NODES makes the store a Cluster client.
  const stack = await startProxyStack(t, { memory: true, env: { REDIS_CLUSTER_NODES: cluster.nodes.join(',') } })
  t.equal(stack.app.store.kind, 'redis')
  const replica = await buildApp(stack.config)
  t.teardown(async () => { await replica.close() })
  const port = await freePort()
  await replica.listen({ port, host: '127.0.0.1' })
  const replicaUrl = `http://127.0.0.1:${port}`

  const holder = await signInWithKey(stack)
  const call = (url: string) => async () => await fetch(`${url}${MODEL_PATH}`, { headers: { 'x-goog-api-key': holder.key } })
  t.equal((await call(stack.url)()).status, 200, 'the key works on replica A')
  t.equal((await call(replicaUrl)()).status, 200, 'and on replica B')

  const sizes = await Promise.all(cluster.masters.map(async (master) => await master.client().dbsize()))
  t.ok(sizes.filter((size) => size > 0).length >= 2, `the gateway's keys are spread over the masters (${sizes.join(', ')})`)

  // A forced refresh runs the lock (SET NX, the delete-if-equals script) and rewrites the record and schedule.
  const before = await stack.app.vault.accessToken(holder.personId)
  await ageTokens(stack, holder.personId, 60_000)
  const after = await stack.app.vault.accessToken(holder.personId, { force: true })
  t.not(after, before, 'a refresh under the cluster lock gives a new token')
  // The other replica's cache hears of the refresh over pub/sub: within the propagation bound, not at once.
  const deadline = Date.now() + PROPAGATION_MS
  let seen = await replica.vault.accessToken(holder.personId)
  while (seen !== after && Date.now() < deadline) {
    await sleep(50)
    seen = await replica.vault.accessToken(holder.personId)
  }
  t.equal(seen, after, 'which the other replica reads')

  const second = await signInWithKey(stack, { name: 'second' })
  t.equal((await fetch(`${replicaUrl}${MODEL_PATH}`, { headers: { 'x-goog-api-key': second.key } })).status, 200)
  const revoked = await holder.browser.fetch(`/auth/keys/${holder.keyId}`, { method: 'DELETE', headers: { origin: stack.url } })
  t.equal(revoked.status, 204, 'revoking a key deletes its keys across slots')
  t.equal(await statusWithin(401, call(replicaUrl)), 401, 'the revocation reaches replica B\'s cache over cluster pub/sub')

  const cookie = { cookie: second.browser.cookieHeader() }
  t.equal((await fetch(`${replicaUrl}/auth/me`, { headers: cookie })).status, 200, 'the session works on B')
  const logout = await second.browser.fetch('/auth/logout', { method: 'POST', headers: { origin: stack.url } })
  t.equal(logout.status, 204, 'sign-out on A (sessions and keys of the person, in many slots)')
  t.equal(await statusWithin(401, async () => await fetch(`${replicaUrl}/auth/me`, { headers: cookie })), 401, 'ends the session on B')
  t.equal(await statusWithin(401, async () => await fetch(`${replicaUrl}${MODEL_PATH}`, { headers: { 'x-goog-api-key': second.key } })), 401, 'and the key')
})

t.test('a Cluster that lost every master: 503 in Google\'s shape, not a request that hangs; ready again when it is back', async (t) => {
  const cluster = await startRedisCluster(t)
  const stack = await startProxyStack(t, { memory: true, env: { REDIS_CLUSTER_NODES: cluster.nodes.join(','), STORE_OUTAGE_GRACE_SECONDS: '0' } })
  const holder = await signInWithKey(stack)
  t.equal((await fetch(`${stack.url}${MODEL_PATH}`, { headers: { 'x-goog-api-key': holder.key } })).status, 200)

  await Promise.all(cluster.masters.map(async (master) => { await master.stop() }))
  // Bounded, so that a hang fails here rather than at the test's timeout. Until the gateway has
  // noticed the outage a cache hit needs no store; once it has, STORE_OUTAGE_GRACE_SECONDS=0 serves nothing from them.
  t.equal(await statusWithin(503, async () => await fetch(`${stack.url}/readyz`, { signal: AbortSignal.timeout(15_000) })), 503, 'not ready')
  const response = await fetch(`${stack.url}${MODEL_PATH}`, { headers: { 'x-goog-api-key': holder.key }, signal: AbortSignal.timeout(15_000) })
  t.equal(response.status, 503)
  t.equal((await response.json() as { error: { status: string } }).error.status, 'UNAVAILABLE')

  // Restarted on their ports with their cluster state files, the nodes form the cluster again (empty).
  await Promise.all(cluster.masters.map(async (master) => { await master.start() }))
  const deadline = Date.now() + 30_000
  let ready = 0
  while (ready !== 200 && Date.now() < deadline) {
    ready = (await fetch(`${stack.url}/readyz`)).status
    if (ready !== 200) await sleep(200)
  }
  t.equal(ready, 200, 'ready again once the cluster answers')
})
