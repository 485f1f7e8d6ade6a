import t from 'tap'
import { personWithKey, startProxyStack } from './helpers/person.js'

const GENERATE = '/v1beta/models/gemini-2.5-flash:generateContent'
const BODY = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] })

interface GoogleError { error: { code: number, status: string, message: string } }

t.test('an unreachable upstream gives 502 in Google\'s shape with the request id', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const holder = await personWithKey(stack)
  await stack.gemini.stop()
  const response = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key, 'x-request-id': 'req-502' }, body: BODY })
  t.equal(response.status, 502)
  const body = await response.json() as GoogleError
  t.equal(body.error.status, 'UNAVAILABLE')
  t.match(body.error.message, /request id req-502/)
  t.notMatch(body.error.message, /ECONNREFUSED|127\.0\.0\.1/, 'no internals')
  await stack.gemini.start()
})

t.test('an upstream that resets the connection gives 502', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const holder = await personWithKey(stack)
  stack.gemini.fault({ kind: 'reset' })
  const response = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: BODY })
  t.equal(response.status, 502)
  t.match((await response.json() as GoogleError).error.message, new RegExp(`request id ${response.headers.get('x-request-id')}`))
})

t.test('an upstream slower than UPSTREAM_TIMEOUT_SECONDS gives 504', async (t) => {
  const stack = await startProxyStack(t, { memory: true, env: { UPSTREAM_TIMEOUT_SECONDS: '1' } })
  const holder = await personWithKey(stack)
  stack.gemini.fault({ kind: 'hang' })
  const response = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: BODY })
  t.equal(response.status, 504)
  t.equal((await response.json() as GoogleError).error.status, 'DEADLINE_EXCEEDED')
})

t.test('upstream error answers pass through unchanged', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const holder = await personWithKey(stack)
  stack.gemini.fault({ kind: 'status', code: 429, message: 'Resource has been exhausted (e.g. check quota).' })
  const response = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: BODY })
  t.equal(response.status, 429)
  t.equal((await response.json() as GoogleError).error.message, 'Resource has been exhausted (e.g. check quota).')
})
