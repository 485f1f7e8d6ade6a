import t from 'tap'
import { MAX_KEYS_PER_PERSON } from '../src/auth/key-store.js'
import { personIdFor } from '../src/auth/person.js'
import { startStack } from './helpers/stack.js'

const CONCURRENT_CREATES = 120

// Checking the count and then creating lets every request in flight pass the check: the limit
// must hold however many creates race, on one replica or several sharing Redis.
t.test(`${CONCURRENT_CREATES} concurrent key creates never exceed the per-person limit`, async (t) => {
  const stack = await startStack(t)
  const { browser } = await stack.signIn()
  const create = async (index: number) => await browser.fetch('/auth/keys', {
    method: 'POST',
    headers: { origin: stack.url, 'content-type': 'application/json' },
    body: JSON.stringify({ name: `racing key ${index}` }),
  })
  const responses = await Promise.all(Array.from({ length: CONCURRENT_CREATES }, async (_unused, index) => await create(index)))
  const statuses = responses.map((response) => response.status)
  t.equal(statuses.filter((status) => status === 201).length, MAX_KEYS_PER_PERSON, `exactly ${MAX_KEYS_PER_PERSON} were created`)
  t.equal(statuses.filter((status) => status === 400).length, CONCURRENT_CREATES - MAX_KEYS_PER_PERSON, 'the rest were refused')
  const personId = personIdFor(stack.provider.issuer, stack.provider.defaultUser.sub)
  t.equal((await stack.app.keys.list(personId)).length, MAX_KEYS_PER_PERSON, 'the person holds exactly the limit')
  t.equal((await stack.app.store.setMembers(`person:${personId}:keys`)).length, MAX_KEYS_PER_PERSON, 'and the index agrees')

  const refused = responses.find((response) => response.status === 400)!
  t.match(await refused.json(), { error: { code: 400, message: /revoke one first/ } })
  const keys = (await (await browser.fetch('/auth/keys')).json() as { keys: Array<{ id: string }> }).keys
  t.equal((await browser.fetch(`/auth/keys/${keys[0]!.id}`, { method: 'DELETE', headers: { origin: stack.url } })).status, 204)
  t.equal((await create(-1)).status, 201, 'after a revoke, one more fits')
  t.equal((await create(-2)).status, 400, 'and no more')
})
