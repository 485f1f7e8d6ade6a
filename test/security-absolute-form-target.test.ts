import t from 'tap'
import { personWithKey, startProxyStack } from './helpers/person.js'
import { rawRequest } from './helpers/raw-http.js'

t.test('an absolute-form request target (SSRF through the router) gets 400 and nothing is sent', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await personWithKey(stack)
  const targets = [
    `${stack.gemini.url}/v1beta/models`,
    'http://evil.example/v1beta/models',
    'https://evil.example/v1beta/models/gemini-2.5-flash:generateContent',
    `http://127.0.0.1:${stack.redis!.port}/v1beta/models`,
  ]
  for (const target of targets) {
    const response = await rawRequest(stack.url, 'GET', target, { 'x-goog-api-key': holder.key })
    t.ok(response.status === 400 || response.status === 404, `${target} refused (${response.status})`)
  }
  t.equal(stack.gemini.requests.length, 0, 'the upstream received nothing')

  const routed = await rawRequest(stack.url, 'GET', 'http://evil.example/v1beta/models', { 'x-goog-api-key': holder.key })
  t.equal(routed.status, 400, 'one that the router matches to the API is answered 400 by the proxy')
})
