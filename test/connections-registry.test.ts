import t from 'tap'
import pino from 'pino'
import { ENDED_CREDENTIAL_GONE, LiveConnections, watchChanges, type LiveConnection } from '../src/connections/registry.js'
import { PersonChanges } from '../src/store/cache.js'
import { MemoryStore } from '../src/store/memory.js'

interface Probe extends LiveConnection {
  valid: boolean
  ended: string[]
}

function probe (personId: string, valid = true): Probe {
  const connection: Probe = {
    personId,
    valid,
    ended: [],
    stillValid: async () => connection.valid,
    end: (reason) => { connection.ended.push(reason) },
  }
  return connection
}

async function registry (): Promise<{ connections: LiveConnections, changes: PersonChanges, other: PersonChanges }> {
  const store = new MemoryStore()
  const changes = new PersonChanges(store)
  const other = new PersonChanges(store)
  await Promise.all([changes.start(), other.start()])
  const connections = new LiveConnections(pino({ enabled: false }))
  watchChanges(connections, changes)
  return { connections, changes, other }
}

const settle = async (): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, 20)) }

t.test('an announcement about a person ends only their connections that no longer hold', async (t) => {
  const { connections, other } = await registry()
  const gone = probe('alice', false)
  const kept = probe('alice', true)
  const bob = probe('bob', false)
  for (const connection of [gone, kept, bob]) connections.add(connection)
  t.equal(connections.size, 3)
  // Announced on another replica: it arrives through the store's pub/sub.
  await other.announce('alice')
  await settle()
  t.same(gone.ended, [ENDED_CREDENTIAL_GONE])
  t.same(kept.ended, [])
  t.same(bob.ended, [])
  t.equal(connections.size, 2)
})

t.test('endPerson ends all of a person\'s connections whatever stillValid says; removal is idempotent', async (t) => {
  const { connections } = await registry()
  const one = probe('alice')
  const two = probe('alice')
  const remove = connections.add(one)
  connections.add(two)
  connections.endPerson('alice', 'suspended')
  t.same([one.ended, two.ended], [['suspended'], ['suspended']])
  t.equal(connections.size, 0)
  remove()
  t.equal(connections.size, 0)
})

t.test('a gap in announcements re-checks everyone; a failing check keeps the connection', async (t) => {
  const { connections } = await registry()
  const gone = probe('alice', false)
  const failing = probe('bob')
  failing.stillValid = async () => { throw new Error('store down') }
  connections.add(gone)
  connections.add(failing)
  connections.recheck(null)
  await settle()
  t.same(gone.ended, [ENDED_CREDENTIAL_GONE])
  t.same(failing.ended, [])
  t.equal(connections.size, 1)
})
