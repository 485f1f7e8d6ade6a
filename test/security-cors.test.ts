import t from 'tap'
import { startStack } from './helpers/stack.js'

t.test('CORS answers only exact configured origins, never a reflected one', async (t) => {
  const stack = await startStack(t, { memory: true, env: { CORS_ORIGINS: 'https://app.example.com' } })
  const allowed = await stack.browser().fetch('/v1beta/models', { headers: { origin: 'https://app.example.com' } })
  t.equal(allowed.headers.get('access-control-allow-origin'), 'https://app.example.com')
  t.equal(allowed.headers.get('access-control-allow-credentials'), 'true')
  for (const origin of ['https://evil.example', 'https://app.example.com.evil.example', 'https://evil-app.example.com', 'null', 'http://app.example.com']) {
    const response = await stack.browser().fetch('/v1beta/models', { headers: { origin } })
    t.equal(response.headers.get('access-control-allow-origin'), null, `${origin} is not reflected`)
  }
  const preflight = await stack.browser().fetch('/v1beta/models', { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } })
  t.equal(preflight.status, 204)
  t.match(preflight.headers.get('access-control-allow-methods'), /POST/)
  const refused = await stack.browser().fetch('/v1beta/models', { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } })
  t.equal(refused.headers.get('access-control-allow-origin'), null)
})

t.test('a configured CORS origin is trusted with the API only: not with /auth/* (test/security-cors-scope.test.ts)', async (t) => {
  const stack = await startStack(t, { env: { CORS_ORIGINS: 'https://app.example.com' } })
  const { browser } = await stack.signIn()
  const me = await browser.fetch('/auth/me', { headers: { origin: 'https://app.example.com' } })
  t.equal(me.headers.get('access-control-allow-origin'), null, 'no CORS on /auth/*')
  const response = await browser.fetch('/auth/logout', { method: 'POST', headers: { origin: 'https://app.example.com' } })
  t.equal(response.status, 403, 'and no CSRF trust there either')
})
