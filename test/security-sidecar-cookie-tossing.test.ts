import t from 'tap'
import { setsGatewayCookie, withoutGatewayCookies } from '../src/sidecar/app-headers.js'
import { HOSTILE_SET_COOKIES, type EchoedRequest } from './fixtures/echo-app.js'
import { rawRequest } from './helpers/raw-http.js'
import { startSidecarStack } from './helpers/sidecar.js'

t.test('the gateway\'s session cookie never reaches the app, whatever else the browser sends', async (t) => {
  const stack = await startSidecarStack(t)
  const { browser } = await stack.signIn()
  const session = browser.cookies.get('gemgate')!
  t.ok(session, 'signed in with the gateway cookie')

  const cookie = `theme=dark; ${browser.cookieHeader()}; GEMGATE=x; gemgate-login=y; %67emgate=z; app-session=abc`
  const response = await rawRequest(stack.url, 'GET', '/page', { cookie })
  t.equal(response.status, 200)
  const seen = JSON.parse(response.body) as EchoedRequest
  t.same(seen.cookies, { theme: 'dark', 'app-session': 'abc' }, 'only the app\'s own cookies')
  t.notOk(seen.cookieHeader?.includes(session.slice(0, 20)), 'not even the session value under another name')
  t.ok(stack.echo.requests.every((request) => !JSON.stringify(request).includes(session.slice(0, 20))), 'in no request at all')

  const onlyOurs = await browser.fetch('/page')
  t.equal(((await onlyOurs.json()) as EchoedRequest).cookieHeader, undefined, 'no Cookie header when nothing of the app\'s is left')
})

t.test('the app cannot set, shadow or clear the gateway\'s cookies', async (t) => {
  const stack = await startSidecarStack(t)
  const { browser } = await stack.signIn()
  const session = browser.cookies.get('gemgate')!

  const response = await browser.fetch('/set-cookie')
  t.equal(response.status, 200)
  t.same(response.headers.getSetCookie(), ['app-session=kept; Path=/; HttpOnly'], 'only the app\'s own cookie is set')
  t.equal(response.headers.get('clear-site-data'), null, 'the app cannot clear the gateway\'s cookies either')
  t.equal(browser.cookies.get('gemgate'), session, 'the browser still holds the gateway\'s session')
  t.equal((await browser.fetch('/auth/me')).status, 200, 'and is still signed in')
})

t.test('the cookie filters themselves', async (t) => {
  for (const line of HOSTILE_SET_COOKIES.slice(0, -1)) t.ok(setsGatewayCookie(line), `refused: ${line}`)
  t.notOk(setsGatewayCookie('app-session=kept; Path=/'))
  t.notOk(setsGatewayCookie('mygemgate=1'), 'a name that merely contains the word is the app\'s')
  t.equal(withoutGatewayCookies('gemgate=s; a=1;;  __Host-gemgate=s ; b=2'), 'a=1; b=2')
  t.equal(withoutGatewayCookies(['gemgate=s', 'c=3']), 'c=3')
  t.equal(withoutGatewayCookies('gemgate=s'), undefined)
})
