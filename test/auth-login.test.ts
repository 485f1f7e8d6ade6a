import { randomBytes } from 'node:crypto'
import t from 'tap'
import { startStack } from './helpers/stack.js'

t.test('a full sign-in lands on the requested page with a session', async (t) => {
  const stack = await startStack(t)
  const browser = stack.browser()
  const login = await browser.fetch('/auth/login?rd=%2Fsome%2Fpage%3Fx%3D1')
  t.equal(login.status, 302)
  const authorize = new URL(login.headers.get('location')!)
  t.equal(authorize.origin, stack.provider.issuer, 'sent to the provider')
  t.equal(authorize.searchParams.get('redirect_uri'), `${stack.url}/auth/callback`)
  t.equal(authorize.searchParams.get('response_type'), 'code')
  t.equal(authorize.searchParams.get('code_challenge_method'), 'S256')
  t.match(authorize.searchParams.get('code_challenge'), /^[\w-]{43}$/)
  t.match(authorize.searchParams.get('state'), /^[\w-]{20,}$/)
  t.match(authorize.searchParams.get('nonce'), /^[\w-]{20,}$/)
  t.equal(authorize.searchParams.get('scope'), 'openid email profile')
  t.equal(authorize.searchParams.get('access_type'), null, 'no Google-only parameters for another issuer')
  t.ok(browser.cookies.has('gemgate-login'), 'the sign-in is bound to this browser')

  const callback = await browser.fetch(await stack.provider.login(authorize.href))
  t.equal(callback.status, 302)
  t.equal(callback.headers.get('location'), '/some/page?x=1')
  t.equal(callback.headers.get('referrer-policy'), 'no-referrer')
  t.ok(browser.cookies.has('gemgate'), 'a session cookie')
  t.notOk(browser.cookies.has('gemgate-login'), 'the pre-auth cookie is cleared')

  const me = await browser.fetch('/auth/me')
  t.equal(me.status, 200)
  const body = await me.json() as Record<string, unknown>
  t.equal(body.email, 'alice@example.com')
  t.equal(body.sub, 'alice')
  t.equal(body.name, 'Alice Example')
  t.ok(Date.parse(String(body.accessTokenExpiresAt)) > Date.now())
  t.ok(Date.parse(String(body.sessionExpiresAt)) > Date.now())
  const text = JSON.stringify(body)
  t.notMatch(text, /token"\s*:\s*"/i, 'no token in /auth/me')

  const verify = await browser.fetch('/auth/verify')
  t.equal(verify.status, 204)
  t.equal(verify.headers.get('x-auth-request-email'), 'alice@example.com')
  t.equal(verify.headers.get('x-auth-request-user'), 'alice')

  const status = await browser.fetch('/auth/status')
  const page = await status.text()
  t.match(page, 'Alice Example')
  t.match(page, 'alice@example.com')
  t.match(status.headers.get('content-security-policy'), /frame-ancestors 'none'/)
  t.equal(status.headers.get('x-content-type-options'), 'nosniff')
})

t.test('signed out: /auth/me and /auth/verify answer 401, the status page offers sign-in', async (t) => {
  const stack = await startStack(t, { memory: true })
  const browser = stack.browser()
  const me = await browser.fetch('/auth/me')
  t.equal(me.status, 401)
  t.same(((await me.json()) as { error: { status: string } }).error.status, 'UNAUTHENTICATED')
  t.equal((await browser.fetch('/auth/verify')).status, 401)
  const home = await browser.fetch('/')
  t.equal(home.status, 200)
  t.match(await home.text(), /href="\/auth\/login\?rd=\/auth\/status"/)
})

t.test('the redirect URI comes from PUBLIC_URL, never from Host or X-Forwarded-*', async (t) => {
  const stack = await startStack(t, { memory: true, env: { TRUST_PROXY: 'true' } })
  const forged = { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https', host: 'evil.example' }
  const first = await stack.browser().fetch('/auth/login', { headers: forged })
  // Another host than PUBLIC_URL's is first sent to PUBLIC_URL (test/auth-public-host.test.ts); then on.
  t.equal(new URL(first.headers.get('location')!).origin, stack.url)
  const login = await stack.browser().fetch(first.headers.get('location')!, { headers: forged })
  t.equal(new URL(login.headers.get('location')!).searchParams.get('redirect_uri'), `${stack.url}/auth/callback`)
})

t.test('every sign-in gets a new session id (no fixation)', async (t) => {
  const stack = await startStack(t)
  const { browser } = await stack.signIn()
  const first = browser.cookies.get('gemgate')
  const again = stack.browser()
  again.cookies.set('gemgate', first!)
  const login = await again.fetch('/auth/login')
  await again.fetch(await stack.provider.login(login.headers.get('location')!))
  t.not(again.cookies.get('gemgate'), first, 'the planted cookie was replaced')
})

t.test('Google defaults ask for offline access so a refresh token comes back', async (t) => {
  const { loadConfig } = await import('../src/config/load.js')
  const config = loadConfig({ env: { PUBLIC_URL: 'https://gemgate.example.com', OIDC_CLIENT_ID: 'id', OIDC_CLIENT_SECRET: 'secret', COOKIE_SECRETS: randomBytes(32).toString('base64url'), TOKEN_ENCRYPTION_KEYS: randomBytes(32).toString('base64'), ALLOWED_EMAILS: 'a@example.com' } })
  t.equal(config.oidc.authParams, 'access_type=offline&prompt=consent')
  t.match(config.oidc.scopes, /generative-language/)
})
