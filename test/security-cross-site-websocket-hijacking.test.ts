import t from 'tap'
import WebSocket from 'ws'
import { freePort } from './fixtures/ports.js'
import { headerValue, startSidecarStack } from './helpers/sidecar.js'
import type { EchoedRequest } from './fixtures/echo-app.js'

// Issue 12, item 2: WebSocket upgrades authenticated by the session cookie were accepted
// whatever their Origin, so a page on a same-site origin (another port, a sibling subdomain)
// opened a WebSocket to the app as the victim and got their identity headers and assertion.

type Opened = { hello: { request: EchoedRequest } } | { status: number }

/** Opens a WebSocket as a browser page on `origin` would (undefined: no Origin, as a non-browser client). */
async function open (url: string, headers: Record<string, string>, origin?: string): Promise<Opened> {
  const socket = new WebSocket(url, { headers, ...(origin === undefined ? {} : { origin }) })
  return await new Promise((resolve, reject) => {
    socket.once('message', (data) => { resolve({ hello: JSON.parse(String(data)) }); socket.terminate() })
    socket.once('unexpected-response', (_request, response) => { resolve({ status: response.statusCode ?? 0 }); response.resume() })
    socket.once('error', reject)
  })
}

t.test('a cookie-authenticated WebSocket opens only from the gateway\'s origin or one configured', async (t) => {
  const sibling = `http://127.0.0.1:${await freePort()}`
  const configured = `http://localhost:${await freePort()}`
  const stack = await startSidecarStack(t, { env: { APP_WEBSOCKET_ORIGINS: configured } })
  const ws = stack.url.replace(/^http/, 'ws')
  const { browser } = await stack.signIn()
  const cookie = { cookie: browser.cookieHeader() }

  for (const [origin, what] of [[sibling, 'another port of the same host'], ['http://evil.127.0.0.1.nip.io', 'another site'], ['null', 'an opaque origin'], [undefined, 'no Origin at all']] as const) {
    for (const path of ['/live', '/public/feed']) {
      t.match(await open(`${ws}${path}`, cookie, origin), { status: 403 }, `${path} from ${what} is refused`)
    }
  }
  t.same(stack.echo.requests, [], 'no refused handshake reached the app')

  const own = await open(`${ws}/live`, cookie, stack.url)
  t.ok('hello' in own && headerValue(own.hello.request, 'x-forwarded-email') === 'alice@example.com', 'the gateway\'s own origin opens it, with identity')
  const listed = await open(`${ws}/live`, cookie, configured)
  t.ok('hello' in listed, 'an origin in APP_WEBSOCKET_ORIGINS opens it')

  const anonymous = await open(`${ws}/public/feed`, {}, sibling)
  t.ok('hello' in anonymous && headerValue(anonymous.hello.request, 'x-forwarded-email') === undefined, 'without a cookie there is nothing to hijack: a public path opens, without identity')
})
