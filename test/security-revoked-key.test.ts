import { createHash } from 'node:crypto'
import t from 'tap'
import { signInWithKey, startProxyStack } from './helpers/person.js'

const MODEL_PATH = '/v1beta/models/gemini-2.5-flash'

t.test('a revoked key gets 401 in Google\'s shape and nothing is sent upstream', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const call = async () => await fetch(`${stack.url}${MODEL_PATH}`, { headers: { 'x-goog-api-key': holder.key } })
  t.equal((await call()).status, 200, 'works before')
  const revoked = await holder.browser.fetch(`/auth/keys/${holder.keyId}`, { method: 'DELETE', headers: { origin: stack.url } })
  t.equal(revoked.status, 204)
  const response = await call()
  t.equal(response.status, 401)
  const body = await response.json() as { error: { code: number, status: string } }
  t.same([body.error.code, body.error.status], [401, 'UNAUTHENTICATED'])
  t.equal((await fetch(`${stack.url}${MODEL_PATH}?key=${holder.key}`)).status, 401, 'nor as ?key=')
  t.equal((await fetch(`${stack.url}${MODEL_PATH}`, { headers: { authorization: `Bearer ${holder.key}` } })).status, 401, 'nor as a bearer token')
  t.equal(stack.gemini.requests.length, 1, 'only the call before revocation went upstream')
})

t.test('signing out revokes every key of that person', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const second = await holder.browser.fetch('/auth/keys', { method: 'POST', headers: { origin: stack.url, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'second' }) })
  const secondKey = (await second.json() as { key: string }).key
  const logout = await holder.browser.fetch('/auth/logout', { method: 'POST', headers: { origin: stack.url } })
  t.equal(logout.status, 204)
  for (const key of [holder.key, secondKey]) {
    t.equal((await fetch(`${stack.url}${MODEL_PATH}`, { headers: { 'x-goog-api-key': key } })).status, 401)
  }
  const { browser } = await stack.signIn()
  t.same((await (await browser.fetch('/auth/keys')).json() as { keys: unknown[] }).keys, [], 'a new sign-in does not bring them back')
  t.equal(stack.gemini.requests.length, 0)
})

t.test('an expired key gets 401', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const holder = await signInWithKey(stack)
  const { key, secret } = await stack.app.keys.create(holder.personId, 'short-lived', 1)
  t.equal((await fetch(`${stack.url}${MODEL_PATH}`, { headers: { 'x-goog-api-key': secret } })).status, 200)
  // As if the day had gone by and the store's TTL had not yet removed the record.
  const recordKey = `key:hash:${createHash('sha256').update(secret).digest('base64url')}`
  const record = JSON.parse((await stack.app.store.get(recordKey))!) as { expiresAt: number }
  t.equal(record.expiresAt, key.expiresAt)
  await stack.app.store.set(recordKey, JSON.stringify({ ...record, expiresAt: Date.now() - 1 }))
  // A day later the gateway's own cache of the key (never kept past the key's expiry) is gone too.
  stack.app.identityCache.forget(holder.personId)
  t.equal((await fetch(`${stack.url}${MODEL_PATH}`, { headers: { 'x-goog-api-key': secret } })).status, 401)
  t.equal(stack.gemini.requests.length, 1)
})
