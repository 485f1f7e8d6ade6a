import { GoogleGenAI } from '@google/genai'
import t from 'tap'
import { signInWithKey, startProxyStack } from './helpers/person.js'
import { connectSdk } from './helpers/live.js'

t.test('revoking the key that opened a live session ends it with a reason', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const other = await signInWithKey(stack, { name: 'kept' })
  const live = await connectSdk(stack.url, holder.key)
  const kept = await connectSdk(stack.url, other.key)
  const revoked = await holder.browser.fetch(`/auth/keys/${holder.keyId}`, { method: 'DELETE', headers: { origin: stack.url } })
  t.equal(revoked.status, 204)
  t.match(await live.closed, { code: 1008, reason: /credential revoked/ })
  kept.session.sendClientContent({ turns: 'still here', turnComplete: true })
  await kept.turns(1)
  t.pass('a session opened with another, unrevoked key goes on')
  kept.session.close()
})

t.test('signing out ends the person\'s live sessions', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const live = await connectSdk(stack.url, holder.key)
  const logout = await holder.browser.fetch('/auth/logout', { method: 'POST', headers: { origin: stack.url } })
  t.equal(logout.status, 204)
  t.match(await live.closed, { code: 1008, reason: /signed out/ })
  const upstream = stack.gemini.live.sessions[0]!
  t.ok((await stack.gemini.live.closedOf(upstream)).code > 0, 'the upstream session is closed too')
})

t.test('an ephemeral token that expires ends the session it opened', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const ai = new GoogleGenAI({ apiKey: holder.key, httpOptions: { baseUrl: stack.url, apiVersion: 'v1alpha' } })
  const token = await ai.authTokens.create({ config: { expireTime: new Date(Date.now() + 1500).toISOString() } })
  const live = await connectSdk(stack.url, token.name!, { apiVersion: 'v1alpha' })
  t.same(await live.closed, { code: 1008, reason: 'The ephemeral token expired.' })
})

t.test('revoking an ephemeral token ends the session it opened', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const ai = new GoogleGenAI({ apiKey: holder.key, httpOptions: { baseUrl: stack.url, apiVersion: 'v1alpha' } })
  const token = await ai.authTokens.create({ config: { uses: 1 } })
  const live = await connectSdk(stack.url, token.name!, { apiVersion: 'v1alpha' })
  const revoked = await fetch(`${stack.url}/v1alpha/${token.name!}`, { method: 'DELETE', headers: { 'x-goog-api-key': holder.key } })
  t.equal(revoked.status, 204)
  t.match(await live.closed, { code: 1008, reason: /credential revoked/ })
})
