import t from 'tap'
import { personWithKey, startProxyStack } from './helpers/person.js'
import { rawRequest } from './helpers/raw-http.js'

// Each would reach something other than the Gemini API if a hop decoded or normalised it.
const ESCAPES = [
  '/v1beta/../auth/keys',
  '/v1beta/./models',
  '/v1beta/models/../../healthz',
  '/v1beta/%2e%2e/%2e%2e/auth/keys',
  '/v1beta/%2E%2E/metrics',
  '/v1beta/.%2e/metrics',
  '/v1beta/models%2F..%2F..%2Fauth%2Fkeys',
  '/v1beta/models/..%2f..%2fmetrics',
  '/v1beta/models%2fgemini-2.5-flash',
  '/v1beta/%252e%252e/%252e%252e/metrics',
  '/v1beta/models\\..\\..\\metrics',
  '/v1beta/..\\metrics',
  '/v1beta/%5c..%5cmetrics',
  '/upload/../v1beta/models',
  '/upload/v1beta/files/%2e%2e',
  '/v1beta//models',
  '/v1beta/models/gemini-2.5-flash%00',
]

t.test('path escapes get 400 and nothing is sent upstream', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await personWithKey(stack)

  const control = await rawRequest(stack.url, 'GET', '/v1beta/models/gemini-2.5-flash', { 'x-goog-api-key': holder.key })
  t.equal(control.status, 200, 'a plain path is forwarded')
  t.equal(stack.gemini.requests.length, 1)
  stack.gemini.clear()

  for (const target of ESCAPES) {
    const response = await rawRequest(stack.url, 'GET', target, { 'x-goog-api-key': holder.key })
    t.equal(response.status, 400, `${target} is refused`)
    t.equal(JSON.parse(response.body).error.status, 'INVALID_ARGUMENT', 'in Google\'s error shape')
  }
  // These never reach the proxy: no route matches, or the router refuses the URL itself.
  for (const target of ['/v1beta%2f..%2fauth/keys', '/%2e%2e/v1beta/models', '/v1beta%5c../metrics', '/v1beta/models/gemini%']) {
    const response = await rawRequest(stack.url, 'GET', target, { 'x-goog-api-key': holder.key })
    t.ok(response.status === 400 || response.status === 404, `${target} is refused (${response.status})`)
  }
  t.equal(stack.gemini.requests.length, 0, 'the upstream received none of them')
})

t.test('the path is checked before the caller is: an escape is refused even without a credential', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const response = await rawRequest(stack.url, 'POST', '/v1beta/%2e%2e/auth/keys')
  t.equal(response.status, 400)
  t.equal(stack.gemini.requests.length, 0)
})
