import t from 'tap'
import { ageTokens, personWithKey, startProxyStack } from './helpers/person.js'

const GENERATE = '/v1beta/models/gemini-2.5-flash:generateContent'
const BODY = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] })

t.test('an access token that expired before the request is refreshed transparently', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await personWithKey(stack, { expiresAt: Date.now() - 60_000 })
  const response = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: BODY })
  t.equal(response.status, 200)
  const [request] = stack.gemini.requests
  t.not(request?.token, holder.accessToken, 'the upstream got a new access token, not the expired one')
  t.equal(request?.sub, holder.sub)
  t.equal(stack.provider.refreshGrantsFor(holder.sub).filter((grant) => grant.success).length, 1, 'one refresh at the provider')
  t.equal((await stack.app.vault.load(holder.personId))?.accessToken, request?.token, 'the new token is stored')
})

t.test('an upstream 401 causes one forced refresh and one retry with the new token', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await personWithKey(stack)
  await ageTokens(stack, holder.personId, 60_000)
  stack.gemini.fault({ kind: 'unauthorized' })
  const response = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: BODY })
  t.equal(response.status, 200, 'the client never saw the 401')
  t.equal(stack.gemini.requests.length, 2, 'sent twice')
  const [first, second] = stack.gemini.requests
  t.equal(first?.token, holder.accessToken)
  t.not(second?.token, holder.accessToken, 'the retry carried a refreshed token')
  t.same(second?.body, JSON.parse(BODY), 'with the same body')
  t.equal(stack.provider.refreshGrantsFor(holder.sub).length, 1, 'exactly one refresh')
})

t.test('a second upstream 401 is passed on: one retry only', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const holder = await personWithKey(stack)
  await ageTokens(stack, holder.personId, 60_000)
  stack.gemini.fault({ kind: 'unauthorized' }, { times: Infinity })
  const response = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: BODY })
  t.equal(response.status, 401)
  t.equal((await response.json() as { error: { status: string } }).error.status, 'UNAUTHENTICATED')
  t.equal(stack.gemini.requests.length, 2)
  t.equal(stack.provider.refreshGrantsFor(holder.sub).length, 1)
})

t.test('a body larger than RETRY_BODY_LIMIT_BYTES streams once: the 401 is passed on, no retry', async (t) => {
  const stack = await startProxyStack(t, { memory: true, env: { RETRY_BODY_LIMIT_BYTES: '64' } })
  const holder = await personWithKey(stack)
  await ageTokens(stack, holder.personId, 60_000)
  stack.gemini.fault({ kind: 'unauthorized' })
  const big = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'word '.repeat(100) }] }] })
  const response = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: big })
  t.equal(response.status, 401)
  t.equal(stack.gemini.requests.length, 1)
  t.equal(stack.gemini.requests[0]?.rawBody.length, Buffer.byteLength(big), 'the body still arrived whole')
})

t.test('a person whose refresh token is refused gets 401 "sign in again", and their keys stop working', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const holder = await personWithKey(stack, { expiresAt: Date.now() - 60_000 })
  stack.provider.failRefreshFor(holder.sub, 'invalid_grant')
  const response = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: BODY })
  t.equal(response.status, 401)
  t.match((await response.json() as { error: { message: string } }).error.message, /sign in again/i)
  const again = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: BODY })
  t.equal(again.status, 401, 'the key no longer works')
  t.equal(stack.gemini.requests.length, 0)
})
