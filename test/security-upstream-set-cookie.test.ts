import t from 'tap'
import { personWithKey, signInWithKey, startProxyStack } from './helpers/person.js'

const MODEL_PATH = '/v1beta/models/gemini-2.5-flash'

t.test('Set-Cookie from the upstream never reaches the client', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const holder = await personWithKey(stack)
  stack.gemini.fault({ kind: 'set-cookie', value: 'gemgate=forged-session; Path=/; HttpOnly' })
  stack.gemini.fault({ kind: 'headers', headers: { 'set-cookie': ['NID=tracking; Path=/', 'SID=other; Path=/'] } })
  for (let call = 0; call < 2; call++) {
    const response = await fetch(`${stack.url}${MODEL_PATH}`, { headers: { 'x-goog-api-key': holder.key } })
    t.equal(response.status, 200)
    t.same(response.headers.getSetCookie(), [], `call ${call}: no Set-Cookie`)
  }
  t.same(stack.gemini.requests.map((request) => request.fault), ['set-cookie', 'headers'], 'the upstream did send them')
})

t.test('an upstream cannot plant or replace the gateway\'s session cookie in a browser', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const before = holder.browser.cookieHeader()
  stack.gemini.fault({ kind: 'set-cookie', value: 'gemgate=forged-session; Path=/; HttpOnly' })
  const response = await holder.browser.fetch(MODEL_PATH)
  t.equal(response.status, 200)
  t.equal(holder.browser.cookieHeader(), before, 'the browser\'s cookies are unchanged')
  t.equal((await holder.browser.fetch('/auth/me')).status, 200, 'and it is still signed in')
})
