import t from 'tap'
import WebSocket from 'ws'
import { NAVIGATION, startSidecarStack } from './helpers/sidecar.js'

t.test('an unreachable app gets a clear 502: a page for browsers, JSON for others; the gateway keeps working', async (t) => {
  const stack = await startSidecarStack(t)
  const { browser } = await stack.signIn()
  await stack.echo.stop()

  const page = await browser.fetch('/dashboard', { headers: NAVIGATION })
  t.equal(page.status, 502)
  t.match(page.headers.get('content-type'), /^text\/html/)
  const text = await page.text()
  t.match(text, /The app is unavailable/)
  t.match(text, new RegExp(page.headers.get('x-request-id')!), 'names the request id')
  t.notMatch(text, /ECONNREFUSED|127\.0\.0\.1/, 'no internals')

  const api = await browser.fetch('/api/items', { headers: { accept: 'application/json' } })
  t.equal(api.status, 502)
  const body = await api.json() as { error: { message: string } }
  t.match(body, { error: { code: 502, status: 'UNAVAILABLE', message: /The app could not be reached/ } })
  t.notMatch(body.error.message, /ECONNREFUSED|127\.0\.0\.1/)

  const handshake = await new Promise<number>((resolve, reject) => {
    const socket = new WebSocket(`${stack.url.replace(/^http/, 'ws')}/live`, { headers: { cookie: browser.cookieHeader() }, origin: stack.url })
    socket.once('unexpected-response', (_request, response) => { resolve(response.statusCode ?? 0); response.resume() })
    socket.once('open', () => { socket.terminate(); reject(new Error('opened with no app')) })
  })
  t.equal(handshake, 502, 'a WebSocket handshake gets the 502 too')

  t.equal((await fetch(`${stack.url}/healthz`)).status, 200)
  t.equal((await browser.fetch('/auth/me')).status, 200)
  t.equal((await fetch(`${stack.url}/.well-known/jwks.json`)).status, 200)
})

t.test('a slow app gets a 504 once APP_TIMEOUT_SECONDS passes', async (t) => {
  const stack = await startSidecarStack(t, { env: { APP_TIMEOUT_SECONDS: '1' } })
  const { browser } = await stack.signIn()

  const page = await browser.fetch('/slow', { headers: NAVIGATION })
  t.equal(page.status, 504)
  t.match(await page.text(), /The app is taking too long/)
  const api = await browser.fetch('/slow', { headers: { accept: 'application/json' } })
  t.equal(api.status, 504)
  t.match(await api.json(), { error: { code: 504, status: 'DEADLINE_EXCEEDED', message: /did not answer in time/ } })
  t.equal((await browser.fetch('/auth/me')).status, 200, 'the gateway\'s own routes answer meanwhile')
})

t.test('a browser that gives up on a slow page ends the gateway\'s request to the app too', async (t) => {
  const stack = await startSidecarStack(t)
  const { browser } = await stack.signIn()
  const controller = new AbortController()
  const call = browser.fetch('/slow', { headers: { accept: 'application/json' }, signal: controller.signal })
  for (let attempt = 0; attempt < 500 && !stack.echo.requests.some((request) => request.url === '/slow'); attempt++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.ok(stack.echo.requests.some((request) => request.url === '/slow'), 'the app got the request')
  t.same(stack.echo.abandoned, [], 'and it is still open')
  controller.abort()
  await t.rejects(call)
  // Bounded well below APP_TIMEOUT_SECONDS (300 s by default), so only the client's leaving can end it.
  for (let attempt = 0; attempt < 1000 && stack.echo.abandoned.length === 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(stack.echo.abandoned, ['/slow'], 'the app saw the gateway hang up')
})
