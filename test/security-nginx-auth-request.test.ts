import { readFile } from 'node:fs/promises'
import t from 'tap'
import { startEchoApp, type EchoedRequest } from './fixtures/echo-app.js'
import { startNginx } from './fixtures/nginx.js'
import { signInWithKey, startProxyStack } from './helpers/person.js'
import { headerValue, headerValues } from './helpers/sidecar.js'

// Issue 12, item 4: in the nginx auth_request profile, /auth/verify accepted gateway keys and
// assertions (so a key opened the app, and nginx forwarded the key itself to it), client-sent
// X-Auth-Request-*, X-Gemgate-Assertion, Remote-User and similar headers passed through
// deploy/nginx to the app, and the app had no CSRF protection. This drives the SHIPPED
// deploy/nginx/nginx.conf with the real nginx binary, only its upstream addresses replaced.

const SHIPPED_CONFIG = new URL('../deploy/nginx/nginx.conf', import.meta.url)
const GENERATE = '/v1beta/models/gemini-2.5-flash:generateContent'
const BODY = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] })

/** The shipped config with the compose service addresses replaced by loopback ones. */
function withAddresses (text: string, port: number, gateway: string, app: string): string {
  return text.replace(/listen\s+8080\s*;/, `listen 127.0.0.1:${port};`)
    .replaceAll('http://gemgate:8080', gateway)
    .replaceAll('http://app:3000', app)
}

const SPOOFED: Record<string, string> = {
  'X-Auth-Request-User': 'mallory', 'X-Auth-Request-Email': 'mallory@example.com', 'X-Auth-Request-Groups': 'admins',
  'X-Gemgate-Assertion': 'eyJhbGciOiJFUzI1NiJ9.e30.forged', 'Remote-User': 'mallory', 'Remote-Email': 'mallory@example.com',
  'X-Webauth-User': 'mallory', 'X-Goog-Authenticated-User-Email': 'accounts.google.com:mallory@example.com',
  'X-Forwarded-User': 'mallory', 'X-Forwarded-Email': 'mallory@example.com', 'X-Forwarded-Name': 'Mallory',
  'X-Remote-User': 'mallory', 'X-User': 'mallory', 'X-Original-URL': '/admin', Forwarded: 'for=10.0.0.1;host=evil',
}

t.test('the shipped nginx profile: only a browser session opens the app, which gets only the gateway\'s identity', async (t) => {
  const echo = await startEchoApp(t)
  const stack = await startProxyStack(t)
  const shipped = await readFile(SHIPPED_CONFIG, 'utf8')
  const nginx = await startNginx(t, (port) => withAddresses(shipped, port, stack.url, echo.url))
  const holder = await signInWithKey(stack)
  const cookie = holder.browser.cookieHeader()
  const assertion = await stack.app.assertions.issue({ sub: holder.sub, email: 'alice@example.com', name: 'Alice' })
  const get = async (path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Response> =>
    await fetch(`${nginx.url}${path}`, { method, redirect: 'manual', headers: { accept: 'application/json', ...headers } })

  // Any credential but the session cookie is sent to sign in, and nothing reaches the app.
  for (const [what, path, headers] of [
    ['nothing', '/page', {}],
    ['a key in x-goog-api-key', '/page', { 'x-goog-api-key': holder.key }],
    ['a key as a bearer token', '/page', { authorization: `Bearer ${holder.key}` }],
    ['an assertion', '/page', { 'x-goog-api-key': assertion }],
    ['an assertion as a bearer token', '/page', { authorization: `Bearer ${assertion}` }],
  ] as Array<[string, string, Record<string, string>]>) {
    const response = await get(path, headers)
    t.equal(response.status, 302, `${what}: sent to sign in`)
    t.match(response.headers.get('location'), /\/auth\/login\?rd=/)
  }
  for (const path of [`/page?key=${holder.key}`, `/page?k=%67k_${holder.key.slice(3)}`]) {
    t.equal((await get(path, { cookie })).status, 400, 'a key in the query is refused, even signed in')
  }
  t.same(echo.requests, [], 'the app saw none of them')

  const response = await get('/page?q=1', { cookie: `${cookie}; app-pref=dark`, 'x-goog-api-key': holder.key, authorization: `Bearer ${holder.key}`, 'x-api-key': holder.key, ...SPOOFED })
  t.equal(response.status, 200)
  const seen = await response.json() as EchoedRequest
  t.equal(headerValue(seen, 'x-forwarded-user'), holder.sub, 'the gateway\'s subject')
  t.equal(headerValue(seen, 'x-forwarded-email'), 'alice@example.com', 'the gateway\'s email')
  for (const name of Object.keys(SPOOFED).filter((name) => !/^x-forwarded-(user|email)$/i.test(name))) {
    t.same(headerValues(seen, name).filter((value) => value !== ''), [], `${name}: not the client's`)
  }
  t.equal(seen.cookieHeader, undefined, 'no cookie reaches the app')
  t.notOk(JSON.stringify(seen).includes(holder.key), 'no key reaches the app')

  // CSRF: a state-changing request carrying the cookie must come from the gateway's own origin.
  const before = echo.requests.length
  for (const origin of ['http://evil.example', 'null', undefined]) {
    const post = await get('/form', { cookie, 'content-type': 'application/x-www-form-urlencoded', ...(origin === undefined ? {} : { origin }) }, 'POST')
    t.equal(post.status, 403, `a POST from ${origin ?? 'no Origin'} is refused`)
  }
  t.equal(echo.requests.length, before, 'no cross-site POST reached the app')
  t.equal((await get('/form', { cookie, origin: stack.url }, 'POST')).status, 200, 'a POST from the gateway\'s origin passes')

  // The API paths still take keys: nginx hands them to the gateway, which swaps them for the token.
  const api = await fetch(`${nginx.url}${GENERATE}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-goog-api-key': holder.key }, body: BODY })
  t.equal(api.status, 200, 'a key works on the API paths')
  const verify = await fetch(`${nginx.url}/auth/verify`, { headers: { cookie } })
  t.equal(verify.status, 404, '/auth/verify is not reachable from outside through nginx')
})

t.test('/auth/verify answers for browser sessions only', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const assertion = await stack.app.assertions.issue({ sub: holder.sub, email: 'alice@example.com', name: 'Alice' })
  const verify = async (headers: Record<string, string>): Promise<number> => (await fetch(`${stack.url}/auth/verify`, { headers })).status
  t.equal(await verify({ cookie: holder.browser.cookieHeader() }), 204, 'a session')
  t.equal(await verify({ 'x-goog-api-key': holder.key }), 401, 'a gateway key')
  t.equal(await verify({ authorization: `Bearer ${assertion}` }), 401, 'an assertion')
  t.equal(await verify({ cookie: holder.browser.cookieHeader(), 'x-original-method': 'POST', origin: 'http://evil.example' }), 403, 'a cross-site POST')
  t.equal(await verify({ cookie: holder.browser.cookieHeader(), 'x-forwarded-method': 'DELETE' }), 403, 'a DELETE with no Origin (Traefik)')
  t.equal(await verify({ cookie: holder.browser.cookieHeader(), 'x-original-method': 'POST', origin: stack.url }), 204, 'a same-origin POST')
})
