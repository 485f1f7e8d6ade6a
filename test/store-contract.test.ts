import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { MemoryStore } from '../src/store/memory.js'
import { RedisStore, createRedisClient } from '../src/store/redis.js'
import type { QuotaCheck, QuotaRequest } from '../src/store/quota.js'
import type { Store } from '../src/store/store.js'
import { startRedis, type RedisFixture } from './fixtures/redis.js'
import { startRedisCluster, startRedisSentinel } from './fixtures/redis-topologies.js'

/** Makes a fresh store for one test and closes it at that test's teardown. */
type StoreFactory = (t: Test) => Promise<Store>

/** Longest the suite waits for something that should happen (an expiry, a message); not a speed assertion. */
const EVENTUALLY_MS = 10_000

async function eventually (t: Test, what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + EVENTUALLY_MS
  while (!(await check())) {
    if (Date.now() > deadline) {
      t.fail(`${what}: not within ${EVENTUALLY_MS} ms`)
      return
    }
    await sleep(20)
  }
  t.pass(what)
}

/** Resolves with the messages a listener received once it holds `count` of them (or the deadline passes). */
function inbox (): { listener: (message: string) => void, messages: string[], received: (count: number) => Promise<string[]> } {
  const messages: string[] = []
  return {
    messages,
    listener: (message) => { messages.push(message) },
    async received (count) {
      const deadline = Date.now() + EVENTUALLY_MS
      while (messages.length < count && Date.now() < deadline) await sleep(10)
      return messages
    },
  }
}

/**
 * What every Store must do, whatever it runs on: the gateway's sessions, locks, one-time
 * values, refresh schedule and usage counters depend on exactly this.
 */
function storeContract (t: Test, factory: StoreFactory): void {
  // Keys differ per test, so tests never see each other's data on a shared Redis.
  const key = (name: string): string => `contract:${randomUUID()}:${name}`

  t.test('get and set', async (t) => {
    const store = await factory(t)
    const k = key('value')
    t.equal(await store.get(k), null, 'a missing key reads as null')
    await store.set(k, 'one')
    t.equal(await store.get(k), 'one')
    await store.set(k, 'two')
    t.equal(await store.get(k), 'two', 'set overwrites')
    await store.set(k, '')
    t.equal(await store.get(k), '', 'an empty string is a value, not a miss')
  })

  t.test('set with a TTL expires', async (t) => {
    const store = await factory(t)
    const short = key('short')
    const long = key('long')
    await store.set(short, 'soon gone', 50)
    await store.set(long, 'stays', 60_000)
    t.equal(await store.get(short), 'soon gone', 'readable before it expires')
    await eventually(t, 'the short-lived key expires', async () => await store.get(short) === null)
    t.equal(await store.get(long), 'stays', 'a long TTL has not expired')
    await store.set(long, 'no ttl now')
    await sleep(100)
    t.equal(await store.get(long), 'no ttl now', 'set without a TTL keeps the key')
  })

  t.test('setIfAbsent is a lock', async (t) => {
    const store = await factory(t)
    const lock = key('lock')
    t.equal(await store.setIfAbsent(lock, 'owner-a', 60_000), true, 'the first caller gets it')
    t.equal(await store.setIfAbsent(lock, 'owner-b', 60_000), false, 'the second does not')
    t.equal(await store.get(lock), 'owner-a', 'and does not overwrite it')

    const contested = key('contested')
    const results = await Promise.all(Array.from({ length: 25 }, async (_, index) => await store.setIfAbsent(contested, `owner-${index}`, 60_000)))
    t.equal(results.filter(Boolean).length, 1, 'of 25 concurrent callers exactly one gets the lock')
    t.equal(await store.get(contested), `owner-${results.indexOf(true)}`, 'and holds it')

    const expiring = key('expiring')
    t.equal(await store.setIfAbsent(expiring, 'crashed-owner', 50), true)
    await eventually(t, 'a lock whose owner died expires', async () => await store.get(expiring) === null)
    t.equal(await store.setIfAbsent(expiring, 'next-owner', 60_000), true, 'and can be taken again')
  })

  t.test('take is atomic and single-use', async (t) => {
    const store = await factory(t)
    const once = key('once')
    await store.set(once, 'state-123', 60_000)
    t.equal(await store.take(once), 'state-123')
    t.equal(await store.take(once), null, 'a second take finds nothing')
    t.equal(await store.get(once), null, 'take deletes')
    t.equal(await store.take(key('never-set')), null)

    const raced = key('raced')
    await store.set(raced, 'only-once', 60_000)
    const taken = await Promise.all(Array.from({ length: 25 }, async () => await store.take(raced)))
    t.same(taken.filter((value) => value !== null), ['only-once'], 'of 25 concurrent takes exactly one gets the value')

    const expired = key('expired')
    await store.set(expired, 'too late', 50)
    await eventually(t, 'the value expires', async () => await store.get(expired) === null)
    t.equal(await store.take(expired), null, 'an expired value cannot be taken')
  })

  t.test('deleteIfEquals releases only the owner\'s lock', async (t) => {
    const store = await factory(t)
    const lock = key('lock')
    await store.set(lock, 'owner-a', 60_000)
    t.equal(await store.deleteIfEquals(lock, 'owner-b'), false, 'someone else cannot release it')
    t.equal(await store.get(lock), 'owner-a')
    t.equal(await store.deleteIfEquals(lock, 'owner-a'), true, 'the owner can')
    t.equal(await store.get(lock), null)
    t.equal(await store.deleteIfEquals(lock, 'owner-a'), false, 'releasing twice is a no-op')

    // The owner stalls past its TTL, another takes over: the late release must not free the new lock.
    const handover = key('handover')
    await store.setIfAbsent(handover, 'slow-owner', 50)
    await eventually(t, 'the slow owner\'s lock expires', async () => await store.setIfAbsent(handover, 'new-owner', 60_000))
    t.equal(await store.deleteIfEquals(handover, 'slow-owner'), false)
    t.equal(await store.get(handover), 'new-owner', 'the new owner still holds the lock')
  })

  t.test('setIfEquals is a compare-and-set: it writes only over the value it was given', async (t) => {
    const store = await factory(t)
    const record = key('record')
    t.equal(await store.setIfEquals(record, 'v1', 'v2'), false, 'nothing to compare with: no write')
    t.equal(await store.get(record), null, 'and nothing created')
    await store.set(record, 'v1')
    t.equal(await store.setIfEquals(record, 'other', 'v2'), false, 'a changed value is not overwritten')
    t.equal(await store.get(record), 'v1')
    t.equal(await store.setIfEquals(record, 'v1', 'v2'), true, 'the value read is replaced')
    t.equal(await store.get(record), 'v2')
    t.equal(await store.setIfEquals(record, 'v1', 'v3'), false, 'a second writer that read v1 loses')
    t.equal(await store.get(record), 'v2')

    const leased = key('leased')
    await store.set(leased, 'a')
    t.equal(await store.setIfEquals(leased, 'a', 'b', 50), true, 'with a time to live')
    await eventually(t, 'the value with a TTL expires', async () => await store.get(leased) === null)
  })

  t.test('expireIfEquals renews only the owner\'s lock', async (t) => {
    const store = await factory(t)
    const lock = key('heartbeat')
    await store.setIfAbsent(lock, 'owner-a', 200)
    t.equal(await store.expireIfEquals(lock, 'owner-b', 60_000), false, 'someone else cannot renew it')
    t.equal(await store.expireIfEquals(lock, 'owner-a', 60_000), true, 'the owner can')
    await new Promise((resolve) => setTimeout(resolve, 300))
    t.equal(await store.get(lock), 'owner-a', 'renewed past its first TTL')
    t.equal(await store.expireIfEquals(key('gone'), 'owner-a', 60_000), false, 'false when the key is gone')
  })

  t.test('delete removes every kind of key', async (t) => {
    const store = await factory(t)
    const [text, set, schedule, hash] = [key('text'), key('set'), key('schedule'), key('hash')]
    await store.set(text, 'x')
    await store.addToSet(set, 'member')
    await store.schedule(schedule, 'member', 1)
    await store.incrementFields(hash, { count: 1 })
    await store.delete(text, set, schedule, hash, key('missing'))
    t.equal(await store.get(text), null)
    t.same(await store.setMembers(set), [])
    t.same(await store.scheduleStats(schedule), { size: 0, soonest: null })
    t.same(await store.getFields(hash), {})
    await store.delete()
    t.pass('deleting nothing is fine')
  })

  t.test('expire resets the time to live (idle expiry)', async (t) => {
    const store = await factory(t)
    t.equal(await store.expire(key('missing'), 60_000), false, 'false when the key is gone')

    const session = key('session')
    await store.set(session, 'alive', 300)
    t.equal(await store.expire(session, 60_000), true, 'true when it exists')
    await sleep(600)
    t.equal(await store.get(session), 'alive', 'touched: it outlives its first TTL')

    t.equal(await store.expire(session, 50), true)
    await eventually(t, 'a shortened TTL expires the key', async () => await store.get(session) === null)
    t.equal(await store.expire(session, 60_000), false, 'an expired key cannot be revived')

    const forever = key('forever')
    await store.set(forever, 'no ttl')
    t.equal(await store.expire(forever, 50), true, 'a key without a TTL gets one')
    await eventually(t, 'and expires', async () => await store.get(forever) === null)
  })

  t.test('sets', async (t) => {
    const store = await factory(t)
    const set = key('set')
    t.same(await store.setMembers(set), [], 'a missing set is empty')
    await store.addToSet(set, 'b')
    await store.addToSet(set, 'a')
    await store.addToSet(set, 'b')
    t.same((await store.setMembers(set)).sort(), ['a', 'b'], 'members are unique')
    await store.removeFromSet(set, 'b')
    await store.removeFromSet(set, 'not-there')
    t.same(await store.setMembers(set), ['a'])
    await store.removeFromSet(set, 'a')
    t.same(await store.setMembers(set), [], 'removing the last member empties it')
    await store.addToSet(set, 'c')
    t.same(await store.setMembers(set), ['c'], 'and it can be refilled')
  })

  t.test('addToSetIfBelow never overshoots its limit, even when adds race', async (t) => {
    const store = await factory(t)
    const k = key('capped')
    t.equal(await store.addToSetIfBelow(k, 'a', 2), true)
    t.equal(await store.addToSetIfBelow(k, 'a', 2), true, 'a member already there stays, and counts as in')
    t.equal(await store.addToSetIfBelow(k, 'b', 2), true)
    t.equal(await store.addToSetIfBelow(k, 'c', 2), false, 'full: refused')
    t.same((await store.setMembers(k)).sort(), ['a', 'b'])
    const racing = key('racing')
    const added = await Promise.all(Array.from({ length: 60 }, async (_unused, index) => await store.addToSetIfBelow(racing, `m${index}`, 25)))
    t.equal(added.filter(Boolean).length, 25, '60 concurrent adds, 25 accepted')
    t.equal((await store.setMembers(racing)).length, 25)
    await store.removeFromSet(racing, (await store.setMembers(racing))[0]!)
    t.equal(await store.addToSetIfBelow(racing, 'late', 25), true, 'room again after a removal')
  })

  t.test('schedule and due: soonest first, at most limit', async (t) => {
    const store = await factory(t)
    const schedule = key('schedule')
    const now = Date.now()
    await store.schedule(schedule, 'in-3s', now + 3_000)
    await store.schedule(schedule, 'overdue-2', now - 1_000)
    await store.schedule(schedule, 'overdue-1', now - 2_000)
    await store.schedule(schedule, 'overdue-3', now - 500)
    await store.schedule(schedule, 'in-1h', now + 3_600_000)

    t.same(await store.due(schedule, now, 10), ['overdue-1', 'overdue-2', 'overdue-3'], 'due at or before now, soonest first')
    t.same(await store.due(schedule, now, 2), ['overdue-1', 'overdue-2'], 'limit keeps the soonest')
    t.same(await store.due(schedule, now - 1_000, 10), ['overdue-1', 'overdue-2'], 'a member due exactly at now counts')
    t.same(await store.due(schedule, now + 3_000, 10), ['overdue-1', 'overdue-2', 'overdue-3', 'in-3s'])
    t.same(await store.due(key('empty'), now, 10), [])

    await store.schedule(schedule, 'overdue-1', now + 7_200_000)
    t.same(await store.due(schedule, now, 10), ['overdue-2', 'overdue-3'], 'rescheduling moves a member, never duplicates it')
    await store.unschedule(schedule, 'overdue-2')
    await store.unschedule(schedule, 'not-there')
    t.same(await store.due(schedule, now, 10), ['overdue-3'], 'unschedule removes it')
    t.same(await store.due(schedule, now, 10), ['overdue-3'], 'due only reads; the caller unschedules')
  })

  t.test('scheduleStats: size and the soonest due time', async (t) => {
    const store = await factory(t)
    const schedule = key('stats')
    t.same(await store.scheduleStats(schedule), { size: 0, soonest: null })
    const soonest = Date.now() + 123_457
    await store.schedule(schedule, 'later', soonest + 60_000)
    await store.schedule(schedule, 'sooner', soonest)
    t.same(await store.scheduleStats(schedule), { size: 2, soonest }, 'exact to the millisecond')
    await store.unschedule(schedule, 'sooner')
    t.same(await store.scheduleStats(schedule), { size: 1, soonest: soonest + 60_000 })
  })

  t.test('incrementFields and getFields: usage counters', async (t) => {
    const store = await factory(t)
    const usage = key('usage')
    t.same(await store.getFields(usage), {}, 'missing counters are an empty record')
    await store.incrementFields(usage, { requests: 1, promptTokens: 120, outputTokens: 30 })
    await store.incrementFields(usage, { requests: 1, promptTokens: 80 })
    await store.incrementFields(usage, {})
    t.same(await store.getFields(usage), { requests: '2', promptTokens: '200', outputTokens: '30' })
    await Promise.all(Array.from({ length: 20 }, async () => await store.incrementFields(usage, { requests: 1 })))
    t.equal((await store.getFields(usage)).requests, '22', 'concurrent increments are not lost')
    await store.incrementFields(usage, { outputTokens: -5 })
    t.equal((await store.getFields(usage)).outputTokens, '25')
  })

  t.test('setFields, getField and getFields: an index kept in one hash', async (t) => {
    const store = await factory(t)
    const index = key('index')
    t.equal(await store.getField(index, 'a'), null, 'a missing hash has no field')
    await store.setFields(index, { a: '{"x":1}', b: 'two' })
    await store.setFields(index, { b: 'three' })
    t.equal(await store.getField(index, 'a'), '{"x":1}')
    t.equal(await store.getField(index, 'c'), null, 'a missing field is null')
    t.same(await store.getFields(index), { a: '{"x":1}', b: 'three' }, 'setFields replaces only the fields it names')
  })

  t.test('appendToLog and readLog: an append-only log by time, paged, trimmed by age', async (t) => {
    const store = await factory(t)
    const log = key('log')
    const before = Date.now()
    t.same(await store.readLog(log, { fromMs: 0, toMs: Date.now(), count: 10 }), [], 'a missing log reads as empty')
    for (const entry of ['one', 'two', 'three']) await store.appendToLog(log, entry, 60_000)
    const all = await store.readLog(log, { fromMs: before, toMs: Date.now(), count: 10 })
    t.same(all.map(({ entry }) => entry), ['one', 'two', 'three'], 'oldest first')
    t.ok(all.every(({ id }) => Number(id.split('-')[0]) >= before), 'ids start with the time in ms')
    t.equal(new Set(all.map(({ id }) => id)).size, 3, 'ids are unique')
    const first = await store.readLog(log, { fromMs: before, toMs: Date.now(), count: 2 })
    t.same(first.map(({ entry }) => entry), ['one', 'two'], 'at most count')
    const next = await store.readLog(log, { fromMs: before, toMs: Date.now(), count: 2, after: first[1]!.id })
    t.same(next.map(({ entry }) => entry), ['three'], 'after an id: the next page')
    t.same(await store.readLog(log, { fromMs: Date.now() + 60_000, toMs: Date.now() + 120_000, count: 10 }), [], 'nothing in a later range')
    await sleep(30)
    await store.appendToLog(log, 'four', 10)
    const kept = await store.readLog(log, { fromMs: 0, toMs: Date.now(), count: 10 })
    t.ok(kept.length < 4 && kept.at(-1)?.entry === 'four', 'entries older than the retention are dropped on append')
  })

  t.test('reserveQuota and settleQuota: check and reserve as one step, corrected later', async (t) => {
    const store = await factory(t)
    const tag = `{${randomUUID()}}`
    const rpm: QuotaCheck = { key: key(`${tag}:rpm`), kind: 'bucket', resource: 'requests', limit: 5, windowMs: 60_000 }
    const day: QuotaCheck = { key: key(`${tag}:day`), kind: 'total', resource: 'tokens', limit: 1_000, windowMs: 86_400_000, resetAt: Date.now() + 3_600_000 }
    const usd: QuotaCheck = { key: key(`${tag}:usd`), kind: 'total', resource: 'nanoUsd', limit: 100_000, windowMs: 86_400_000, resetAt: Date.now() + 3_600_000 }
    const call = (maxOutput: number): QuotaRequest => ({ checks: [rpm, day, usd], promptTokens: 100, maxOutput, minOutput: 10, inputPrice: 50, outputPrice: 100 })
    t.same(await store.reserveQuota(call(300)), { admitted: true, output: 300, remaining: [4, 600, 65_000] }, 'fits whole')
    const lowered = await store.reserveQuota(call(900))
    t.same(lowered, { admitted: true, output: 500, remaining: [3, 0, 10_000] }, 'output lowered to what the token budget pays for')
    const refused = await store.reserveQuota(call(300))
    t.equal(refused.admitted, false)
    if (!refused.admitted) {
      t.equal(refused.blocked, 1, 'the token budget (the first binding check) refused')
      t.ok(refused.retryAfterMs > 3_500_000 && refused.retryAfterMs <= 3_600_000, 'until the period ends')
    }
    const usage = key(`${tag}:usage`)
    await store.settleQuota({ charges: [{ check: rpm, amount: 0 }, { check: day, amount: -300 }, { check: usd, amount: -30_000 }], usage: { key: usage, ttlMs: 60_000, fields: { 'm|requests': 1, 'm|output': 20 } } })
    t.same(await store.getFields(usage), { 'm|requests': '1', 'm|output': '20' }, 'usage added')
    t.same(await store.quotaUsed([rpm, day, usd]), [2, 700, 60_000], 'the correction is applied (the rate has begun to refill, but no whole request is back: both still count)')
    const concurrent = await Promise.all(Array.from({ length: 10 }, async () => await store.reserveQuota({ ...call(0), checks: [rpm], promptTokens: 0 })))
    t.equal(concurrent.filter((answer) => answer.admitted).length, 3, 'concurrent calls never pass the rate together')
  })

  t.test('reserveQuota with a lease: more calls reserved in the same step, only with headroom to spare', async (t) => {
    const store = await factory(t)
    const tag = `{${randomUUID()}}`
    const day: QuotaCheck = { key: key(`${tag}:day`), kind: 'total', resource: 'tokens', limit: 1_000, windowMs: 86_400_000, resetAt: Date.now() + 3_600_000 }
    const call: QuotaRequest = { checks: [day], promptTokens: 10, maxOutput: 40, minOutput: 10, inputPrice: 0, outputPrice: 0, lease: { calls: 4, divisor: 2 } }
    t.same(await store.reserveQuota(call), { admitted: true, output: 40, remaining: [750], leased: 4 }, 'the call and four more like it')
    t.same(await store.reserveQuota({ ...call, lease: { calls: 10, divisor: 2 } }), { admitted: true, output: 40, remaining: [350], leased: 7 }, 'no more than half of what is left after the call')
    t.same(await store.reserveQuota({ ...call, lease: { calls: 10, divisor: 8 } }), { admitted: true, output: 40, remaining: [300] }, 'near the limit: the call alone')
    t.same(await store.reserveQuota({ ...call, maxOutput: 400 }), { admitted: true, output: 290, remaining: [0] }, 'a lowered call gets no lease')
  })

  t.test('publish and subscribe', async (t) => {
    const store = await factory(t)
    const channel = key('channel')
    const first = inbox()
    const second = inbox()
    const other = inbox()
    // Two subscribers on one channel at once (two plugins starting together).
    await Promise.all([store.subscribe(channel, first.listener), store.subscribe(channel, second.listener)])
    await store.subscribe(key('other-channel'), other.listener)
    await store.publish(channel, 'session-revoked:1')
    await store.publish(channel, 'session-revoked:2')
    // Both, in either order: on a Cluster each PUBLISH may enter through another node, and the
    // nodes pass messages on independently (every message the gateway publishes is an idempotent invalidation).
    t.same((await first.received(2)).toSorted(), ['session-revoked:1', 'session-revoked:2'], 'delivered')
    t.same((await second.received(2)).toSorted(), ['session-revoked:1', 'session-revoked:2'], 'to every subscriber of the channel')
    await sleep(50)
    t.same(other.messages, [], 'not to other channels')
    await store.publish(key('nobody-listens'), 'x')
    t.pass('publishing to a channel nobody listens on is fine')
  })

  t.test('ping answers', async (t) => {
    const store = await factory(t)
    await t.resolves(store.ping())
  })

  t.test('close', async (t) => {
    const store = await factory(t)
    const channel = key('closed')
    const messages = inbox()
    await store.subscribe(channel, messages.listener)
    await store.close()
    t.pass('close resolves')
    const other = await factory(t)
    await other.publish(channel, 'after close').catch(() => {})
    await store.publish(channel, 'after close').catch(() => {})
    await sleep(100)
    t.same(messages.messages, [], 'a closed store delivers nothing more')
  })
}

t.test('MemoryStore', async (t) => {
  storeContract(t, async (t) => {
    const store = new MemoryStore()
    t.teardown(async () => { await store.close() })
    return store
  })
})

t.test('RedisStore', async (t) => {
  const redis = await startRedis(t)
  const open = (t: Test, fixture: RedisFixture = redis): RedisStore => {
    const store = new RedisStore(createRedisClient({ url: fixture.url }))
    t.teardown(async () => { await store.close() })
    return store
  }

  t.test('contract', async (t) => {
    storeContract(t, async (t) => open(t))
  })

  t.test('keys live under the gemgate: prefix', async (t) => {
    const store = open(t)
    await store.set('prefix-check', 'v')
    t.equal(await redis.client().get('gemgate:prefix-check'), 'v')
    t.equal(await redis.client().get('prefix-check'), null)
  })

  t.test('two replicas on one Redis share data and messages', async (t) => {
    const replicaA = open(t)
    const replicaB = open(t)
    await replicaA.set('shared', 'from-a')
    t.equal(await replicaB.get('shared'), 'from-a')
    t.equal(await replicaA.setIfAbsent('shared-lock', 'a', 60_000), true)
    t.equal(await replicaB.setIfAbsent('shared-lock', 'b', 60_000), false, 'one lock across replicas')

    const atA = inbox()
    const atB = inbox()
    await replicaA.subscribe('revocations', atA.listener)
    await replicaB.subscribe('revocations', atB.listener)
    await replicaA.publish('revocations', 'key:123')
    t.same(await atB.received(1), ['key:123'], 'the other replica hears it')
    t.same(await atA.received(1), ['key:123'], 'and so does the publisher')
  })

  t.test('an outage: ping rejects while Redis is down, and everything works again after', async (t) => {
    const own = await startRedis(t)
    const publisher = open(t, own)
    const subscriber = open(t, own)
    const messages = inbox()
    await subscriber.subscribe('after-outage', messages.listener)
    await publisher.set('before', 'lost with the server')

    await own.stop()
    await t.rejects(publisher.ping(), 'ping rejects while Redis is down')
    await t.rejects(publisher.get('before'), 'so do commands')

    await own.start()
    await eventually(t, 'ping answers again once Redis is back', async () => await publisher.ping().then(() => true, () => false))
    t.equal(await publisher.get('before'), null, 'the restarted server is empty')
    await publisher.set('after', 'v')
    t.equal(await publisher.get('after'), 'v')
    await eventually(t, 'the subscription is restored', async () => {
      await publisher.publish('after-outage', 'hello again')
      return messages.messages.length > 0
    })
  })

  t.test('close resolves even while Redis is down', async (t) => {
    const own = await startRedis(t)
    const store = new RedisStore(createRedisClient({ url: own.url }))
    await store.subscribe('x', () => {})
    await own.stop()
    let closed = false
    const closing = store.close().then(() => { closed = true })
    await eventually(t, 'close resolves', async () => closed)
    await closing
  })
})

t.test('RedisStore on a Cluster of three masters', async (t) => {
  const cluster = await startRedisCluster(t)
  storeContract(t, async (t) => {
    const store = new RedisStore(createRedisClient({ clusterNodes: cluster.nodes }))
    t.teardown(async () => { await store.close() })
    return store
  })
})

t.test('RedisStore through Sentinel', async (t) => {
  const sentinel = await startRedisSentinel(t)
  storeContract(t, async (t) => {
    const store = new RedisStore(createRedisClient({ sentinels: sentinel.sentinelNodes, sentinelName: sentinel.name }))
    t.teardown(async () => { await store.close() })
    return store
  })
})
