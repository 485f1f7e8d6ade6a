import { randomBytes } from 'node:crypto'
import t from 'tap'
import { signInWithKey, startProxyStack } from './helpers/person.js'

const MODEL_PATH = '/v1beta/models/gemini-2.5-flash'

// A script (or a misconfigured client) that holds a person's session cookie and sends a key that
// is revoked or unknown must not be answered as the cookie's person: the explicit credential is
// what the caller meant, and a bad one is refused whatever else rides along.
t.test('a bad explicit credential beside a valid session cookie gets 401, never the cookie\'s identity', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const { browser } = holder
  t.equal((await browser.fetch('/auth/keys/' + holder.keyId, { method: 'DELETE', headers: { origin: stack.url } })).status, 204, 'the key is revoked')

  const unknown = `gk_${randomBytes(32).toString('base64url')}`
  const forgedAssertion = `${Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid: 'nope' })).toString('base64url')}.${Buffer.from(JSON.stringify({ iss: stack.url, sub: 'x' })).toString('base64url')}.${'A'.repeat(86)}`
  const cases: Array<[string, RequestInit['headers'], string]> = [
    ['a revoked key in x-goog-api-key', { 'x-goog-api-key': holder.key }, ''],
    ['a revoked key as a bearer token', { authorization: `Bearer ${holder.key}` }, ''],
    ['a revoked key in ?key=', {}, `?key=${holder.key}`],
    ['an unknown key', { 'x-goog-api-key': unknown }, ''],
    ['a malformed key', { 'x-goog-api-key': 'gk_short' }, ''],
    ['an assertion of this gateway\'s issuer that does not verify', { 'x-goog-api-key': forgedAssertion }, ''],
  ]
  for (const [name, headers, query] of cases) {
    const api = await browser.fetch(`${MODEL_PATH}${query}`, { headers })
    t.equal(api.status, 401, `${name}: the API answers 401`)
    t.match(await api.json(), { error: { code: 401, status: 'UNAUTHENTICATED' } })
    const me = await browser.fetch(`/auth/me${query}`, { headers })
    t.equal(me.status, 401, `${name}: /auth/me answers 401`)
  }
  t.equal(stack.gemini.requests.length, 0, 'nothing went upstream')
  t.equal((await browser.fetch(MODEL_PATH)).status, 200, 'the cookie alone still works')
  const foreignJwt = `${Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify({ iss: 'https://other-idp.example', sub: 'x' })).toString('base64url')}.${'A'.repeat(86)}`
  for (const other of ['some-other-apps-token', foreignJwt]) {
    t.equal((await browser.fetch(MODEL_PATH, { headers: { authorization: `Bearer ${other}` } })).status, 200, 'a credential that is not the gateway\'s kind does not count')
  }
})
