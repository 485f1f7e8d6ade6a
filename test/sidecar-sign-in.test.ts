import t from 'tap'
import type { EchoedRequest } from './fixtures/echo-app.js'
import { headerValue, NAVIGATION, sameBrowserAt, startSidecarStack, verifyWithJwks } from './helpers/sidecar.js'

t.test('a signed-out browser goes through sign-in and lands on the app page it asked for, which learns who the person is', async (t) => {
  const stack = await startSidecarStack(t)
  const browser = stack.browser()

  const first = await browser.fetch('/some/page?tab=2', { headers: NAVIGATION })
  t.equal(first.status, 302, 'sent to sign in')
  const login = first.headers.get('location')!
  t.equal(login, `/auth/login?rd=${encodeURIComponent('/some/page?tab=2')}`)
  t.equal(stack.echo.requests.length, 0, 'the app saw nothing of a signed-out request')

  const authorize = await browser.fetch(login)
  t.equal(authorize.status, 302)
  const callback = await browser.fetch(await stack.provider.login(authorize.headers.get('location')!))
  t.equal(callback.status, 302)
  t.equal(callback.headers.get('location'), '/some/page?tab=2', 'back to the page first asked for')

  const page = await browser.fetch('/some/page?tab=2', { headers: NAVIGATION })
  t.equal(page.status, 200)
  t.equal(page.headers.get('x-app'), 'echo', 'the app answered')
  const seen = await page.json() as EchoedRequest
  t.equal(seen.url, '/some/page?tab=2', 'the app got the same path and query')
  t.equal(headerValue(seen, 'x-forwarded-email'), 'alice@example.com')
  t.equal(headerValue(seen, 'x-forwarded-user'), 'alice')
  t.equal(headerValue(seen, 'x-forwarded-name'), 'Alice Example')

  const assertion = headerValue(seen, 'x-gemgate-assertion')!
  const claims = await verifyWithJwks(stack.url, assertion, stack.url)
  t.match(claims, { iss: stack.url, aud: stack.url, sub: 'alice', email: 'alice@example.com', name: 'Alice Example' })
  t.ok(claims.exp! - claims.iat! <= 300 && claims.exp! - claims.iat! >= 60, 'short-lived: minutes, not hours')

  // A second replica on the same Redis publishes the same key and serves the same person.
  const replica = await stack.replica()
  const replicaClaims = await verifyWithJwks(replica.url, assertion, stack.url)
  t.equal(replicaClaims.sub, 'alice', 'the assertion from replica one verifies against replica two\'s JWKS')
  const there = await sameBrowserAt(browser, replica.url).fetch('/other', { headers: NAVIGATION })
  t.equal(there.status, 200)
  const seenThere = await there.json() as EchoedRequest
  const assertionThere = headerValue(seenThere, 'x-gemgate-assertion')!
  t.equal((await verifyWithJwks(stack.url, assertionThere, stack.url)).email, 'alice@example.com', 'and the other way round')
  const [jwksOne, jwksTwo] = await Promise.all([stack.url, replica.url].map(async (url) => await (await fetch(`${url}/.well-known/jwks.json`)).json()))
  t.same(jwksOne, jwksTwo, 'both replicas publish the same keys')
  t.equal((jwksOne as { keys: unknown[] }).keys.length, 1, 'one shared key, not one per replica')
})

t.test('signed out, anything but a page navigation gets 401 JSON; the gateway keeps its own routes', async (t) => {
  const stack = await startSidecarStack(t)
  const api = await fetch(`${stack.url}/api/items`, { headers: { accept: 'application/json' } })
  t.equal(api.status, 401)
  t.match(await api.json(), { error: { code: 401, status: 'UNAUTHENTICATED' } })
  const post = await fetch(`${stack.url}/some/form`, { method: 'POST', headers: { ...NAVIGATION, 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1' })
  t.equal(post.status, 401, 'a signed-out form post is not redirected (its body would be lost)')
  // A gateway key is for the Gemini API, not a sign-in to the app.
  const { browser } = await stack.signIn()
  const created = await browser.fetch('/auth/keys', { method: 'POST', headers: { origin: stack.url, 'content-type': 'application/json' }, body: '{"name":"k"}' })
  const { key } = await created.json() as { key: string }
  t.equal((await fetch(`${stack.url}/api/items`, { headers: { 'x-goog-api-key': key } })).status, 401)
  t.equal(stack.echo.requests.length, 0, 'none of it reached the app')

  t.equal((await fetch(`${stack.url}/healthz`)).status, 200)
  t.equal((await browser.fetch('/auth/me')).status, 200)
  const unknownAuth = await browser.fetch('/auth/nothing-here', { headers: NAVIGATION })
  t.equal(unknownAuth.status, 404, '/auth/* stays the gateway\'s even where it has no route')
  t.equal((await fetch(`${stack.url}/healthz`, { method: 'POST' })).status, 404)
  t.equal((await browser.fetch('/%61uth/me', { headers: NAVIGATION })).status < 300, true, 'an encoded /auth/ path is the gateway\'s')
  t.equal(stack.echo.requests.length, 0, 'the gateway\'s namespace never reaches the app')

  const root = await browser.fetch('/', { headers: NAVIGATION })
  t.equal(root.status, 200)
  t.equal(((await root.json()) as EchoedRequest).url, '/', 'with an app, / is the app\'s')
})

t.test('redirects from the app to its own origin come back on the gateway\'s', async (t) => {
  const stack = await startSidecarStack(t)
  const { browser } = await stack.signIn()
  const response = await browser.fetch('/redirect')
  t.equal(response.status, 302)
  t.equal(response.headers.get('location'), `${stack.url}/landing?from=redirect`)
  const head = await browser.fetch('/page', { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.headers.get('x-app'), 'echo', 'HEAD goes to the app too')
  t.equal(stack.echo.requests.at(-1)?.method, 'HEAD')
})

t.test('a name outside ASCII reaches the app as UTF-8 bytes, and exactly in the assertion', async (t) => {
  const stack = await startSidecarStack(t)
  stack.provider.addUser({ sub: 'jose', email: 'jose@example.com', name: 'José Ñandú\r\nX-Injected: 1' })
  const { browser } = await stack.signIn({ user: 'jose' })
  const seen = await (await browser.fetch('/page')).json() as EchoedRequest
  // Node reads header bytes as latin1; the app decodes them as UTF-8.
  t.equal(Buffer.from(headerValue(seen, 'x-forwarded-name')!, 'latin1').toString('utf8'), 'José ÑandúX-Injected: 1', 'control characters dropped, no header injected')
  t.equal(headerValue(seen, 'x-injected'), undefined)
  const claims = await verifyWithJwks(stack.url, headerValue(seen, 'x-gemgate-assertion')!, stack.url)
  t.equal(claims.name, 'José Ñandú\r\nX-Injected: 1', 'the assertion carries the name as given')
})
