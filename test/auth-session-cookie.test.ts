import { randomBytes } from 'node:crypto'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config/load.js'
import { startProvider } from './fixtures/oidc.js'
import { startStack, testEnvironment } from './helpers/stack.js'

function attributes (setCookie: string): Map<string, string> {
  const [, ...parts] = setCookie.split(';')
  return new Map(parts.map((part) => {
    const [name, value = ''] = part.trim().split('=')
    return [name!.toLowerCase(), value]
  }))
}

t.test('the session cookie on http://127.0.0.1: HttpOnly, SameSite=Lax, Path=/, no Domain, not Secure', async (t) => {
  const stack = await startStack(t)
  const { callback } = await stack.signIn()
  const line = callback.headers.getSetCookie().find((cookie) => cookie.startsWith('gemgate='))!
  const flags = attributes(line)
  t.ok(flags.has('httponly'))
  t.equal(flags.get('samesite'), 'Lax')
  t.equal(flags.get('path'), '/')
  t.notOk(flags.has('domain'))
  t.notOk(flags.has('secure'))
  t.equal(flags.get('max-age'), String(stack.config.sessionTtlSeconds))
  t.match(line, /^gemgate=[\w-]{43}\.[\w+/=-]+;/, 'a 256-bit id and its signature')
})

t.test('on https the cookies are __Host- prefixed and Secure', async (t) => {
  const provider = await startProvider(t)
  const config = loadConfig({ env: { ...testEnvironment('https://gemgate.example.com', provider.issuer, provider.clientId, provider.clientSecret), REDIS_URL: '' } })
  const app = await buildApp(config)
  t.teardown(async () => { await app.close() })
  const login = await app.inject({ method: 'GET', url: '/auth/login', headers: { host: 'gemgate.example.com' } })
  t.equal(login.statusCode, 302)
  const line = String(login.headers['set-cookie'])
  t.match(line, /^__Host-gemgate-login=/)
  const flags = attributes(line)
  t.ok(flags.has('secure'))
  t.ok(flags.has('httponly'))
  t.equal(flags.get('path'), '/')
  t.notOk(flags.has('domain'))
  t.equal(new URL(String(login.headers.location)).searchParams.get('redirect_uri'), 'https://gemgate.example.com/auth/callback')
})

t.test('a flipped byte in the cookie means signed out, and the cookie is cleared', async (t) => {
  const stack = await startStack(t)
  const { browser } = await stack.signIn()
  const value = browser.cookies.get('gemgate')!
  const flipped = value.slice(0, 5) + (value[5] === 'A' ? 'B' : 'A') + value.slice(6)
  browser.cookies.set('gemgate', flipped)
  const me = await browser.fetch('/auth/me')
  t.equal(me.status, 401)
  t.ok(me.headers.getSetCookie().some((line) => /^gemgate=;/.test(line)), 'cleared')
  const status = await stack.browser().fetch('/auth/status', { headers: { cookie: `gemgate=${flipped}` } })
  t.equal(status.status, 200, 'pages still render, signed out')
  t.match(await status.text(), /Sign in/)
})

t.test('malformed and unknown cookies mean signed out', async (t) => {
  const stack = await startStack(t)
  for (const cookie of ['gemgate=', 'gemgate=%zz', 'gemgate=no-signature', `gemgate=${'A'.repeat(5000)}`, 'gemgate=a.b.c.d', 'gemgate']) {
    const me = await stack.browser().fetch('/auth/me', { headers: { cookie } })
    t.equal(me.status, 401, `${cookie.slice(0, 40)} → 401`)
  }
})

t.test('a session deleted server-side (expired) means signed out', async (t) => {
  const stack = await startStack(t)
  const { browser } = await stack.signIn()
  await stack.redis!.client().flushall()
  t.equal((await browser.fetch('/auth/me')).status, 401)
})

t.test('cookie secret rotation: the first secret signs, all verify', async (t) => {
  const stack = await startStack(t)
  const { browser } = await stack.signIn()
  const oldSecret = stack.config.cookieSecrets[0]!
  const rotated = loadConfig({ env: { ...testEnvironment(stack.url, stack.provider.issuer, stack.provider.clientId, stack.provider.clientSecret), REDIS_URL: stack.redis!.url, COOKIE_SECRETS: `${randomBytes(32).toString('base64url')},${oldSecret}`, TOKEN_ENCRYPTION_KEYS: stack.config.tokenEncryptionKeys.join(',') } })
  const app = await buildApp(rotated)
  t.teardown(async () => { await app.close() })
  const me = await app.inject({ method: 'GET', url: '/auth/me', headers: { cookie: browser.cookieHeader() } })
  t.equal(me.statusCode, 200, 'the old cookie still verifies')
  const dropped = loadConfig({ env: { ...testEnvironment(stack.url, stack.provider.issuer, stack.provider.clientId, stack.provider.clientSecret), REDIS_URL: stack.redis!.url, TOKEN_ENCRYPTION_KEYS: stack.config.tokenEncryptionKeys.join(',') } })
  const other = await buildApp(dropped)
  t.teardown(async () => { await other.close() })
  t.equal((await other.inject({ method: 'GET', url: '/auth/me', headers: { cookie: browser.cookieHeader() } })).statusCode, 401, 'a retired secret no longer verifies')
})
