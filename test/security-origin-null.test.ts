import t from 'tap'
import { startStack } from './helpers/stack.js'

// A sandboxed iframe, a data: URL or a cross-origin redirect chain makes a browser send
// `Origin: null`; the Referer beside it is the attacker's to choose (or to strip).
t.test('a cookie-authenticated unsafe request with Origin: null is refused, whatever its Referer', async (t) => {
  const stack = await startStack(t)
  const { browser } = await stack.signIn()
  const ownReferer = `${stack.url}/auth/status`

  const createKey = await browser.fetch('/auth/keys', {
    method: 'POST',
    headers: { origin: 'null', referer: ownReferer, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'from a sandboxed frame' }),
  })
  t.equal(createKey.status, 403, 'creating a key is refused')
  t.match(await createKey.json(), { error: { code: 403, status: 'PERMISSION_DENIED' } })

  const logout = await browser.fetch('/auth/logout', { method: 'POST', headers: { origin: 'null', referer: ownReferer } })
  t.equal(logout.status, 403, 'signing out is refused')
  t.equal((await browser.fetch('/auth/me')).status, 200, 'the person is still signed in')

  const noReferer = await browser.fetch('/auth/logout', { method: 'POST', headers: { origin: 'null' } })
  t.equal(noReferer.status, 403, 'Origin: null alone is refused too')

  const own = await browser.fetch('/auth/logout', { method: 'POST', headers: { origin: stack.url } })
  t.equal(own.status, 204, 'the gateway\'s own origin still signs out')
})
