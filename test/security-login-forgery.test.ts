import t, { type Test } from 'tap'
import { startStack, type Browser } from './helpers/stack.js'

async function noSession (t: Test, browser: Browser, response: Response, status = 400): Promise<void> {
  t.equal(response.status, status, `answers ${status}`)
  t.match(response.headers.get('content-type'), /text\/html/)
  t.equal(response.headers.get('referrer-policy'), 'no-referrer', 'the callback URL never leaks as a referrer')
  t.match(await response.text(), /href="\/auth\/login"/, 'offers to sign in again')
  t.notOk(browser.cookies.has('gemgate'), 'no session cookie')
  t.equal((await browser.fetch('/auth/me')).status, 401, 'signed out')
}

async function startLogin (browser: Browser): Promise<URL> {
  const login = await browser.fetch('/auth/login')
  return new URL(login.headers.get('location')!)
}

function withParameter (url: string, name: string, value: string | null): string {
  const changed = new URL(url)
  if (value === null) changed.searchParams.delete(name)
  else changed.searchParams.set(name, value)
  return changed.href
}

t.test('sign-in forgeries end with no session', async (t) => {
  const stack = await startStack(t)

  t.test('forged state', async (t) => {
    const browser = stack.browser()
    const callback = await stack.provider.login((await startLogin(browser)).href)
    await noSession(t, browser, await browser.fetch(withParameter(callback, 'state', 'forged-state-value')))
  })

  t.test('missing state', async (t) => {
    const browser = stack.browser()
    const callback = await stack.provider.login((await startLogin(browser)).href)
    await noSession(t, browser, await browser.fetch(withParameter(callback, 'state', null)))
  })

  t.test('state from another browser (login CSRF)', async (t) => {
    const attacker = stack.browser()
    const callback = await stack.provider.login((await startLogin(attacker)).href)
    const victim = stack.browser()
    await noSession(t, victim, await victim.fetch(callback))
  })

  t.test('replayed callback', async (t) => {
    const browser = stack.browser()
    const callback = await stack.provider.login((await startLogin(browser)).href)
    t.equal((await browser.fetch(callback)).status, 302, 'the first use signs in')
    const replay = await browser.fetch(callback)
    t.equal(replay.status, 400, 'the second use is refused')
    t.notOk(replay.headers.getSetCookie().some((line) => line.startsWith('gemgate=') && !/Max-Age=0|Expires=Thu, 01 Jan 1970/i.test(line)), 'and makes no session')
  })

  t.test('reused authorization code', async (t) => {
    const browser = stack.browser()
    const first = await stack.provider.login((await startLogin(browser)).href)
    t.equal((await browser.fetch(first)).status, 302)
    const fresh = stack.browser()
    const second = await startLogin(fresh)
    const code = new URL(first).searchParams.get('code')!
    const replay = withParameter(withParameter(first, 'state', second.searchParams.get('state')!), 'code', code)
    await noSession(t, fresh, await fresh.fetch(replay))
  })

  t.test('wrong nonce in the ID token', async (t) => {
    const browser = stack.browser()
    const authorize = await startLogin(browser)
    authorize.searchParams.set('nonce', 'a-nonce-the-gateway-never-made')
    await noSession(t, browser, await browser.fetch(await stack.provider.login(authorize.href)))
  })

  t.test('provider error callback (access_denied)', async (t) => {
    const browser = stack.browser()
    const callback = await stack.provider.login((await startLogin(browser)).href, { deny: true })
    t.match(callback, /error=access_denied/)
    await noSession(t, browser, await browser.fetch(callback), 403)
  })

  t.test('provider error text never reaches the page', async (t) => {
    const browser = stack.browser()
    const authorize = await startLogin(browser)
    const forged = new URL(`${stack.url}/auth/callback`)
    forged.searchParams.set('error', 'access_denied')
    forged.searchParams.set('error_description', '<script>alert(1)</script>')
    forged.searchParams.set('state', authorize.searchParams.get('state')!)
    const response = await browser.fetch(forged.href)
    const page = await response.text()
    t.notMatch(page, 'alert(1)', 'not even escaped: the page says a fixed message (test/security-callback-error-text.test.ts)')
    t.notOk(browser.cookies.has('gemgate'))
  })

  const refusals: Array<[string, { sub: string, email: string, email_verified?: boolean }]> = [
    ['a disallowed domain', { sub: 'mallory', email: 'mallory@evil.example' }],
    ['a look-alike domain', { sub: 'sly', email: 'sly@example.com.evil.example' }],
    ['a two-@ email', { sub: 'twoat', email: 'eve@evil.example@example.com' }],
    ['an unverified email', { sub: 'unverified', email: 'unverified@example.com', email_verified: false }],
  ]
  for (const [name, user] of refusals) {
    t.test(name, async (t) => {
      stack.provider.addUser(user)
      const browser = stack.browser()
      const callback = await stack.provider.login((await startLogin(browser)).href, { user: user.sub })
      await noSession(t, browser, await browser.fetch(callback), 403)
    })
  }
})
