import t from 'tap'
import { personIdFor } from '../src/auth/person.js'
import { startStack } from './helpers/stack.js'

t.test('logout revokes the tokens at the provider and ends the session', async (t) => {
  const stack = await startStack(t)
  const { browser } = await stack.signIn()
  const record = await stack.app.vault.load(personIdFor(stack.provider.issuer, 'alice'))
  t.ok(record?.refreshToken, 'a refresh token was stored')
  t.equal((await stack.provider.introspect(record!.refreshToken!)).active, true)
  const oldCookie = browser.cookieHeader()

  const response = await browser.fetch('/auth/logout', { method: 'POST', headers: { origin: stack.url, accept: 'text/html' } })
  t.equal(response.status, 303)
  t.equal(response.headers.get('location'), '/auth/status?signed-out')
  t.notOk(browser.cookies.has('gemgate'), 'cookie cleared')

  t.equal((await stack.provider.introspect(record!.refreshToken!)).active, false, 'refresh token revoked at the provider')
  t.equal((await stack.provider.introspect(record!.accessToken)).active, false, 'access token revoked at the provider')
  t.equal(await stack.app.vault.load(personIdFor(stack.provider.issuer, 'alice')), null, 'tokens deleted')
  t.equal((await stack.browser().fetch('/auth/me', { headers: { cookie: oldCookie } })).status, 401, 'the old cookie no longer works')
})

t.test('a plain HTML form (urlencoded body) signs out too', async (t) => {
  const stack = await startStack(t)
  const { browser } = await stack.signIn()
  const response = await browser.fetch('/auth/logout', { method: 'POST', headers: { origin: stack.url, accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded' }, body: '' })
  t.equal(response.status, 303)
  t.equal((await browser.fetch('/auth/me')).status, 401)
})

t.test('fetch callers get 204', async (t) => {
  const stack = await startStack(t)
  const { browser } = await stack.signIn()
  const response = await browser.fetch('/auth/logout', { method: 'POST', headers: { origin: stack.url } })
  t.equal(response.status, 204)
  t.equal((await browser.fetch('/auth/me')).status, 401)
})

t.test('GET /auth/logout asks to confirm and changes nothing', async (t) => {
  const stack = await startStack(t)
  const { browser } = await stack.signIn()
  const page = await browser.fetch('/auth/logout')
  t.equal(page.status, 200)
  t.match(await page.text(), /<form method="post" action="\/auth\/logout">/)
  t.equal((await browser.fetch('/auth/me')).status, 200, 'still signed in')
})

t.test('a cross-site logout (CSRF) is refused and changes nothing', async (t) => {
  const stack = await startStack(t)
  const { browser } = await stack.signIn()
  const attempts: Array<Record<string, string>> = [{ origin: 'https://evil.example' }, { referer: 'https://evil.example/page' }, {}, { origin: 'null' }]
  for (const headers of attempts) {
    const response = await browser.fetch('/auth/logout', { method: 'POST', headers })
    t.equal(response.status, 403, `refused with ${JSON.stringify(headers)}`)
  }
  t.equal((await browser.fetch('/auth/me')).status, 200, 'still signed in')
  const sameOriginReferer = await browser.fetch('/auth/logout', { method: 'POST', headers: { referer: `${stack.url}/auth/status` } })
  t.equal(sameOriginReferer.status, 204, 'a same-origin Referer is enough when Origin is absent')
})

t.test('logout still signs out locally while the provider is down', async (t) => {
  const stack = await startStack(t)
  const { browser } = await stack.signIn()
  await stack.provider.stop()
  const response = await browser.fetch('/auth/logout', { method: 'POST', headers: { origin: stack.url } })
  t.equal(response.status, 204)
  t.equal((await browser.fetch('/auth/me')).status, 401)
  await stack.provider.start()
})
