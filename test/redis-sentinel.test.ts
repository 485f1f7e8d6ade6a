import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startRedisSentinel } from './fixtures/redis-topologies.js'
import { signInWithKey, startProxyStack, type KeyHolder } from './helpers/person.js'
import type { Browser } from './helpers/stack.js'

const MODEL_PATH = '/v1beta/models/gemini-2.5-flash'
/** Clients calling at once during the failover. */
const CONCURRENCY = 4
/** Longest the test waits for the gateway to serve from the new master; not a speed assertion. */
const FOLLOW_TIMEOUT_MS = 30_000
const PEOPLE = ['alice', 'bob', 'carol']

t.test('a Sentinel failover under load: the gateway follows the new master', async (t) => {
  const sentinel = await startRedisSentinel(t)
  const stack = await startProxyStack(t, {
    memory: true,
    env: { REDIS_SENTINELS: sentinel.sentinelNodes.join(','), REDIS_SENTINEL_NAME: sentinel.name },
  })
  const holders: Array<KeyHolder & { browser: Browser }> = []
  for (const user of PEOPLE) {
    if (user !== stack.provider.defaultUser.sub) stack.provider.addUser({ sub: user, email: `${user}@example.com`, name: user })
    holders.push(await signInWithKey(stack, { user }))
  }
  // Replication is asynchronous: what the master took just before it died may be lost with it.
  // Wait until the replica has everything, so a lost token below is the gateway's doing.
  await sentinel.master.client().call('WAIT', '1', '5000')

  const statuses = new Map<number, number>()
  let stop = false
  let sent = 0
  const worker = async (index: number): Promise<void> => {
    for (let n = index; !stop; n += CONCURRENCY) {
      const holder = holders[n % holders.length]!
      const response = await fetch(`${stack.url}${MODEL_PATH}`, { headers: { 'x-goog-api-key': holder.key } }).catch(() => null)
      await response?.arrayBuffer()
      sent++
      statuses.set(response?.status ?? 0, (statuses.get(response?.status ?? 0) ?? 0) + 1)
      await sleep(20)
    }
  }
  const load = Array.from({ length: CONCURRENCY }, async (_, index) => { await worker(index) })

  await sleep(500)
  await sentinel.master.stop()
  const killedAt = Date.now()
  let newMaster = 0
  while (Date.now() - killedAt < FOLLOW_TIMEOUT_MS) {
    newMaster = await sentinel.currentMasterPort().catch(() => 0)
    if (newMaster === sentinel.replica.port) break
    await sleep(100)
  }
  t.equal(newMaster, sentinel.replica.port, 'the Sentinels promoted the replica')
  let followedAfterMs = -1
  while (Date.now() - killedAt < FOLLOW_TIMEOUT_MS) {
    // A write: only a master takes it, so a 2xx means the gateway follows the new one.
    const created = await holders[0]!.browser.fetch('/auth/keys', {
      method: 'POST',
      headers: { origin: stack.url, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'after failover' }),
    })
    if (created.status === 201) {
      followedAfterMs = Date.now() - killedAt
      break
    }
    await sleep(200)
  }
  t.ok(followedAfterMs >= 0, 'the gateway writes to the new master')
  await sleep(1_000)
  stop = true
  await Promise.all(load)

  const failed = sent - (statuses.get(200) ?? 0)
  const lost = (await Promise.all(holders.map(async (holder) => await stack.app.vault.load(holder.personId)))).filter((record) => record === null).length
  t.comment(`failover: ${sent} requests, ${failed} failed (${JSON.stringify(Object.fromEntries(statuses))}); writes went to the new master ${followedAfterMs} ms after the old one died`)
  t.comment(`tokens lost: ${lost} of ${holders.length}`)
  t.equal(lost, 0, 'no person lost their tokens')
  t.notOk(statuses.has(500), 'no request answered 500')
  for (const holder of holders) {
    const response = await fetch(`${stack.url}${MODEL_PATH}`, { headers: { 'x-goog-api-key': holder.key } })
    t.equal(response.status, 200, `${holder.sub}'s key works after the failover`)
  }
})
