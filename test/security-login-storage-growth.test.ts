import t from 'tap'
import { startStack } from './helpers/stack.js'

const ANONYMOUS_LOGINS = 200
/** Browsers keep cookies up to about 4 KB each. */
const COOKIE_BUDGET = 4096

function loginCookie (response: Response): string {
  const line = response.headers.getSetCookie().find((cookie) => cookie.startsWith('gemgate-login='))
  if (line === undefined) throw new Error('no login cookie')
  return line.split(';')[0]!
}

// Every anonymous GET /auth/login used to store a sign-in transaction for 10 minutes: one client
// filled Redis fast enough to evict sessions. The pending sign-in now travels in the browser.
t.test('starting sign-ins stores nothing on the server', async (t) => {
  const stack = await startStack(t)
  const redis = stack.redis!.client()
  const before = await redis.dbsize()
  const longRd = `/${'a'.repeat(3_000)}`
  const responses = await Promise.all(Array.from({ length: ANONYMOUS_LOGINS }, async (_unused, index) =>
    await fetch(`${stack.url}/auth/login?rd=${index % 2 === 0 ? encodeURIComponent(longRd) : '/page'}`, { redirect: 'manual' })))
  t.ok(responses.every((response) => response.status === 302), 'every one is sent to the provider')
  t.equal(await redis.dbsize(), before, `${ANONYMOUS_LOGINS} anonymous sign-ins left no key in Redis`)
  for (const response of responses.slice(0, 2)) {
    t.ok(loginCookie(response).length < COOKIE_BUDGET, 'the pending sign-in fits in one cookie, whatever rd was')
  }
})

t.test('the pending sign-in in the cookie is sealed, bounded and single-use', async (t) => {
  const stack = await startStack(t)

  t.test('the cookie hides state and nonce', async (t) => {
    const login = await stack.browser().fetch('/auth/login?rd=/somewhere')
    const authorize = new URL(login.headers.get('location')!)
    const cookie = decodeURIComponent(loginCookie(login))
    for (const name of ['state', 'nonce']) t.notOk(cookie.includes(authorize.searchParams.get(name)!), `${name} is not readable in the cookie`)
    t.notOk(cookie.includes('somewhere'), 'nor is rd')
  })

  t.test('an over-long rd is not kept: the sign-in ends at /', async (t) => {
    const { callback } = await stack.signIn({ rd: `/${'b'.repeat(1_500)}` })
    t.equal(callback.status, 302)
    t.equal(callback.headers.get('location'), '/')
  })

  t.test('a tampered cookie ends with no session', async (t) => {
    const browser = stack.browser()
    const login = await browser.fetch('/auth/login')
    const callbackUrl = await stack.provider.login(login.headers.get('location')!)
    const value = browser.cookies.get('gemgate-login')!
    browser.cookies.set('gemgate-login', `${value.slice(0, 10)}${value[10] === 'A' ? 'B' : 'A'}${value.slice(11)}`)
    const callback = await browser.fetch(callbackUrl)
    t.equal(callback.status, 400)
    t.equal((await browser.fetch('/auth/me')).status, 401)
  })

  t.test('a callback replayed with a copy of the login cookie is refused', async (t) => {
    const browser = stack.browser()
    const login = await browser.fetch('/auth/login')
    const copied = browser.cookies.get('gemgate-login')!
    const callbackUrl = await stack.provider.login(login.headers.get('location')!)
    t.equal((await browser.fetch(callbackUrl)).status, 302, 'the first use signs in')
    const attacker = stack.browser()
    attacker.cookies.set('gemgate-login', copied)
    const replay = await attacker.fetch(callbackUrl)
    t.equal(replay.status, 400, 'the replay is refused')
    t.equal((await attacker.fetch('/auth/me')).status, 401, 'and makes no session')
  })
})
