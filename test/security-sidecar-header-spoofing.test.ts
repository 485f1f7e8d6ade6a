import t from 'tap'
import { appRequestHeaders, isSpoofableHeader } from '../src/sidecar/app-headers.js'
import type { EchoedRequest } from './fixtures/echo-app.js'
import { rawRequest } from './helpers/raw-http.js'
import { headerValue, startSidecarStack } from './helpers/sidecar.js'

/** Every spelling of the identity headers a client might try, each with a forged value. */
const SPOOFED: Array<[string, string]> = [
  ['X-Forwarded-User', 'mallory'],
  ['x-forwarded-email', 'mallory@evil.example'],
  ['X-FORWARDED-NAME', 'Mallory'],
  ['X_Forwarded_User', 'mallory-underscore'],
  ['x_forwarded_email', 'underscore@evil.example'],
  ['X-Forwarded_Email', 'mixed@evil.example'],
  ['X.Forwarded.Email', 'dots@evil.example'],
  ['X-Gemgate-Assertion', 'forged.assertion.value'],
  ['x_gemgate_assertion', 'forged.underscore.value'],
  ['X-GEMGATE-ASSERTION', 'forged.upper.value'],
  ['X-Auth-Request-Email', 'mallory@evil.example'],
  ['X-Forwarded-Preferred-Username', 'mallory'],
  ['X-Forwarded-Groups', 'admins'],
  ['X-Forwarded-Access-Token', 'forged-token'],
  ['X-Forwarded-Uri', '/public/x'],
  ['X-Original-URL', '/admin'],
  ['X-Rewrite-URL', '/admin'],
  ['X-Real-IP', '6.6.6.6'],
  ['Forwarded', 'for=6.6.6.6;host=evil.example'],
  ['X-Forwarded-Host', 'evil.example'],
  ['Remote-User', 'mallory'],
]

/** The forged values: none may reach the app under any name. */
const FORGED = /mallory|evil\.example|forged|6\.6\.6\.6|admins|\/admin/i

function forgedSeen (request: EchoedRequest): Array<[string, string]> {
  return request.headers.filter(([, value]) => FORGED.test(value))
}

t.test('identity headers sent by a signed-in client never reach the app, in any spelling', async (t) => {
  const stack = await startSidecarStack(t)
  const { browser } = await stack.signIn()
  const headers = Object.fromEntries([...SPOOFED.map(([name, value]) => [name, value]), ['cookie', browser.cookieHeader()]])
  const response = await rawRequest(stack.url, 'GET', '/whoami', headers)
  t.equal(response.status, 200)
  const seen = JSON.parse(response.body) as EchoedRequest
  t.same(forgedSeen(seen), [], 'no forged value arrived')
  t.equal(headerValue(seen, 'x-forwarded-user'), 'alice', 'one X-Forwarded-User, the gateway\'s')
  t.equal(headerValue(seen, 'x-forwarded-email'), 'alice@example.com')
  t.equal(headerValue(seen, 'x-forwarded-name'), 'Alice Example')
  t.match(headerValue(seen, 'x-gemgate-assertion'), /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/)
  t.equal(headerValue(seen, 'x-forwarded-host'), new URL(stack.url).host)
})

t.test('signed out on a public path: the forged headers are removed and none are added', async (t) => {
  const stack = await startSidecarStack(t)
  const response = await rawRequest(stack.url, 'GET', '/public/page', Object.fromEntries(SPOOFED))
  t.equal(response.status, 200)
  const seen = JSON.parse(response.body) as EchoedRequest
  t.same(forgedSeen(seen), [])
  for (const name of ['x-forwarded-user', 'x-forwarded-email', 'x-forwarded-name', 'x-gemgate-assertion']) {
    t.equal(headerValue(seen, name), undefined, `no ${name}`)
  }
})

t.test('naming the gateway\'s headers in Connection cannot strip them', async (t) => {
  const stack = await startSidecarStack(t)
  const { browser } = await stack.signIn()
  const response = await rawRequest(stack.url, 'GET', '/whoami', {
    cookie: browser.cookieHeader(),
    connection: 'close, x-forwarded-email, x-gemgate-assertion, x-forwarded-user',
  })
  const seen = JSON.parse(response.body) as EchoedRequest
  t.equal(headerValue(seen, 'x-forwarded-email'), 'alice@example.com')
  t.equal(headerValue(seen, 'x-forwarded-user'), 'alice')
  t.ok(headerValue(seen, 'x-gemgate-assertion'))
})

t.test('the header filter itself: every spelling is caught, ordinary headers pass', async (t) => {
  for (const [name] of SPOOFED) t.ok(isSpoofableHeader(name), name)
  for (const name of ['accept', 'content-type', 'x-app-header', 'x-forwardedfor', 'user-agent']) t.notOk(isSpoofableHeader(name), name)
  const headers = appRequestHeaders({ 'x_forwarded_user': 'mallory', accept: 'text/html', 'x-goog-api-key': 'gk_secret', authorization: 'Bearer gk_secret' }, {
    identity: null, requestId: 'r1', clientIp: '127.0.0.1', publicUrl: 'https://gate.example',
  })
  t.same(headers, {
    accept: 'text/html',
    'x-forwarded-for': '127.0.0.1',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'gate.example',
    'x-request-id': 'r1',
  }, 'gateway keys are never passed to the app either')
})
