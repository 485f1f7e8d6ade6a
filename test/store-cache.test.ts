import t from 'tap'
import { PersonCache, PersonChanges, PERSON_CHANGED_CHANNEL } from '../src/store/cache.js'
import { MemoryStore } from '../src/store/memory.js'
import { StoreStatus } from '../src/store/status.js'
import type { Store } from '../src/store/store.js'

async function started (store: Store = new MemoryStore()): Promise<{ store: Store, changes: PersonChanges }> {
  const changes = new PersonChanges(store)
  await changes.start()
  return { store, changes }
}

t.test('nothing is served before the replica hears announcements', async (t) => {
  const changes = new PersonChanges(new MemoryStore())
  const cache = new PersonCache<string>(changes)
  cache.set('a', 'alice', 'value', cache.ticket())
  t.equal(cache.get('a'), undefined)
  await changes.start()
  cache.set('a', 'alice', 'value', cache.ticket())
  t.equal(cache.get('a'), 'value')
})

t.test('an announcement drops that person only, here and in every cache on the store', async (t) => {
  const { store, changes } = await started()
  const mine = new PersonCache<string>(changes)
  const other = new PersonCache<string>((await started(store)).changes)
  for (const cache of [mine, other]) {
    cache.set('a1', 'alice', 'alice 1', cache.ticket())
    cache.set('a2', 'alice', 'alice 2', cache.ticket())
    cache.set('b', 'bob', 'bob', cache.ticket())
  }
  await changes.announce('alice')
  for (const cache of [mine, other]) {
    t.same([cache.get('a1'), cache.get('a2'), cache.get('b')], [undefined, undefined, 'bob'])
  }
})

t.test('a read that started before an announcement is not kept', async (t) => {
  const { changes } = await started()
  const cache = new PersonCache<string>(changes)
  const ticket = cache.ticket()
  // …the store is read, and meanwhile someone signs out…
  await changes.announce('alice')
  cache.set('a', 'alice', 'stale', ticket)
  t.equal(cache.get('a'), undefined)
})

t.test('entries end at the TTL, or sooner at their own expiry', async (t) => {
  const { changes } = await started()
  const cache = new PersonCache<string>(changes, { ttlMs: 5_000 })
  const now = Date.now()
  cache.set('a', 'alice', 'value', cache.ticket())
  cache.set('k', 'alice', 'key', cache.ticket(), now + 1_000)
  t.equal(cache.get('a', now + 4_000), 'value')
  t.equal(cache.get('k', now + 4_000), undefined, 'past its own expiry')
  t.equal(cache.get('a', now + 6_000), undefined, 'past the TTL')
  t.equal(cache.size, 0)
})

t.test('the oldest entry goes when the cache is full', async (t) => {
  const { changes } = await started()
  const cache = new PersonCache<number>(changes, { maxEntries: 2 })
  for (const n of [1, 2, 3]) cache.set(`k${n}`, `p${n}`, n, cache.ticket())
  t.same([cache.get('k1'), cache.get('k2'), cache.get('k3')], [undefined, 2, 3])
})

t.test('a gap in delivery forgets everything', async (t) => {
  let gap: (() => void) | undefined
  const memory = new MemoryStore()
  const store: Store = Object.assign(Object.create(memory) as Store, {
    subscribe: async (channel: string, listener: (message: string) => void, onGap?: () => void) => {
      gap = onGap
      await memory.subscribe(channel, listener)
    },
  })
  const { changes } = await started(store)
  const cache = new PersonCache<string>(changes)
  cache.set('a', 'alice', 'value', cache.ticket())
  gap?.()
  t.equal(cache.get('a'), undefined)
  t.equal(PERSON_CHANGED_CHANNEL, 'person-changed')
})

t.test('during a store outage: entries are served for the grace period only, never past their own expiry', async (t) => {
  // A memory store that can be unreachable: its status is driven by hand.
  const store = new (class extends MemoryStore { readonly status = new StoreStatus() })()
  const { status } = store
  const changes = new PersonChanges(store, { outageGraceMs: 60_000 })
  await changes.start()
  const cache = new PersonCache<string>(changes, { ttlMs: 5_000 })
  const now = Date.now()
  cache.set('session', 'alice', 'alice', cache.ticket())
  cache.set('token', 'bob', 'bob', cache.ticket(), now + 10_000)

  status.lost(new Error('gone'))
  t.equal(changes.serving(), 'outage')
  t.equal(cache.get('session', now + 30_000), 'alice', 'past its TTL, but nothing fresher can be read')
  t.equal(cache.get('token', now + 30_000), undefined, 'never past the value\'s own expiry')
  cache.set('new', 'carol', 'carol', cache.ticket())
  t.equal(cache.get('new'), undefined, 'nothing new is cached while the store is down')
  t.equal(changes.serving(status.downSince! + 60_001), 'none', 'the grace period ends')

  status.answered()
  t.equal(changes.serving(), 'fresh')
  t.equal(cache.get('session'), undefined, 'once the store answers, everything cached before is forgotten')
})
