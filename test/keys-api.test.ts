import t from 'tap'
import { signInWithKey, startProxyStack } from './helpers/person.js'

interface ListedKey { id: string, name: string, createdAt: string, lastUsedAt: string | null, expiresAt: string | null }

t.test('create, list, use and revoke a key from a browser session', async (t) => {
  const stack = await startProxyStack(t)
  const { browser } = await stack.signIn()
  const post = (body: unknown) => browser.fetch('/auth/keys', { method: 'POST', headers: { origin: stack.url, 'content-type': 'application/json' }, body: JSON.stringify(body) })

  const created = await post({ name: 'laptop', expiresInDays: 30 })
  t.equal(created.status, 201)
  t.equal(created.headers.get('cache-control'), 'no-store')
  const key = await created.json() as { id: string, name: string, key: string, expiresAt: string }
  t.match(key.key, /^gk_[A-Za-z0-9_-]{43}$/)
  t.equal(key.name, 'laptop')
  t.ok(Math.abs(Date.parse(key.expiresAt) - (Date.now() + 30 * 86_400_000)) < 60_000, 'expires in 30 days')

  const listed = await (await browser.fetch('/auth/keys')).json() as { keys: ListedKey[] }
  t.same(listed.keys.map((entry) => [entry.id, entry.name, entry.lastUsedAt]), [[key.id, 'laptop', null]])
  t.notOk(JSON.stringify(listed).includes(key.key), 'the secret is never listed')

  t.equal((await fetch(`${stack.url}/v1beta/models`, { headers: { 'x-goog-api-key': key.key } })).status, 200)
  const used = await (await browser.fetch('/auth/keys')).json() as { keys: ListedKey[] }
  t.ok(used.keys[0]?.lastUsedAt !== null, 'last use is recorded')

  const me = await (await fetch(`${stack.url}/auth/me`, { headers: { 'x-goog-api-key': key.key } })).json() as { email: string }
  t.equal(me.email, 'alice@example.com', 'a key identifies its person')

  const dump = await stack.redis!.client().keys('*')
  const values = await Promise.all(dump.map(async (name) => JSON.stringify(await stack.redis!.client().dump(name))))
  t.notOk(values.some((value) => value.includes(key.key.slice(3))), 'Redis holds no copy of the secret')

  t.equal((await browser.fetch(`/auth/keys/${key.id}`, { method: 'DELETE', headers: { origin: stack.url } })).status, 204)
  t.same((await (await browser.fetch('/auth/keys')).json() as { keys: unknown[] }).keys, [])
  t.equal((await browser.fetch(`/auth/keys/${key.id}`, { method: 'DELETE', headers: { origin: stack.url } })).status, 404, 'gone')
})

t.test('keys are managed only from a session, only by their owner, and with valid input', async (t) => {
  const stack = await startProxyStack(t)
  stack.provider.addUser({ sub: 'bob', email: 'bob@example.com', name: 'Bob' })
  const alice = await signInWithKey(stack)
  const bob = await signInWithKey(stack, { user: 'bob' })

  t.equal((await fetch(`${stack.url}/auth/keys`, { headers: { 'x-goog-api-key': alice.key } })).status, 401, 'a key cannot list keys')
  const minted = await fetch(`${stack.url}/auth/keys`, { method: 'POST', headers: { 'x-goog-api-key': alice.key, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x' }) })
  t.equal(minted.status, 401, 'a key cannot mint keys')
  t.equal((await fetch(`${stack.url}/auth/keys`)).status, 401, 'nobody cannot list keys')

  const stolen = await bob.browser.fetch(`/auth/keys/${alice.keyId}`, { method: 'DELETE', headers: { origin: stack.url } })
  t.equal(stolen.status, 404, 'bob cannot revoke alice\'s key')
  t.equal((await fetch(`${stack.url}/v1beta/models`, { headers: { 'x-goog-api-key': alice.key } })).status, 200, 'it still works')
  const bobs = await (await bob.browser.fetch('/auth/keys')).json() as { keys: ListedKey[] }
  t.same(bobs.keys.map((entry) => entry.id), [bob.keyId], 'bob lists only his own')

  const crossSite = await alice.browser.fetch('/auth/keys', { method: 'POST', headers: { origin: 'https://evil.example', 'content-type': 'application/json' }, body: JSON.stringify({ name: 'csrf' }) })
  t.equal(crossSite.status, 403, 'a cross-site page cannot create a key with the cookie')

  for (const body of [{}, { name: '' }, { name: '   ' }, { name: 'x', expiresInDays: 0 }, { name: 'x', expiresInDays: 100_000 }, { name: 'x'.repeat(101) }]) {
    const response = await alice.browser.fetch('/auth/keys', { method: 'POST', headers: { origin: stack.url, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    t.equal(response.status, 400, `refused: ${JSON.stringify(body).slice(0, 40)}`)
  }
})

t.test('the status page lists keys and creates and revokes them with plain forms', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack, { name: 'from the api' })
  const page = await (await holder.browser.fetch('/auth/status')).text()
  t.match(page, /from the api/)
  t.match(page, /<form method="post" action="\/auth\/keys"/)
  t.notOk(page.includes(holder.key), 'the page never shows an existing secret')

  const created = await holder.browser.fetch('/auth/keys', { method: 'POST', headers: { origin: stack.url, 'content-type': 'application/x-www-form-urlencoded' }, body: 'name=from+the+page&expiresInDays=' })
  t.equal(created.status, 201)
  const shown = /<code>(gk_[A-Za-z0-9_-]{43})<\/code>/.exec(await created.text())?.[1]
  t.ok(shown, 'the new key is shown once on a page')
  t.equal((await fetch(`${stack.url}/v1beta/models`, { headers: { 'x-goog-api-key': shown! } })).status, 200, 'and works')

  const revoke = await holder.browser.fetch(`/auth/keys/${holder.keyId}/revoke`, { method: 'POST', headers: { origin: stack.url, 'content-type': 'application/x-www-form-urlencoded' }, body: '' })
  t.equal(revoke.status, 303)
  t.match(revoke.headers.get('location'), /^\/auth\/status\?revoked=[^#]*#keys$/)
  t.equal((await fetch(`${stack.url}/v1beta/models`, { headers: { 'x-goog-api-key': holder.key } })).status, 401)
})
