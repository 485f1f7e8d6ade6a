import t from 'tap'
import type { RecordedRequest } from './fixtures/gemini.js'
import { personWithKey, signInWithKey, startProxyStack } from './helpers/person.js'

const GENERATE = '/v1beta/models/gemini-2.5-flash:generateContent'
const BODY = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] })

function everything (request: RecordedRequest): string {
  return JSON.stringify({ path: request.path, query: request.query, headers: request.headers })
}

t.test('no client credential (Authorization, x-goog-api-key, key=, cookies) ever reaches the upstream', async (t) => {
  const stack = await startProxyStack(t, { env: { UPSTREAM_QUOTA_PROJECT: 'billing-project' } })
  const holder = await personWithKey(stack)
  const record = await stack.app.vault.load(holder.personId)
  const secrets = [holder.key, 'client-bearer-token', 'AIzaClientGoogleKey', 'client-access-token', 'session-cookie-value', 'client-project']

  const calls: Array<[string, string, Record<string, string>]> = [
    ['x-goog-api-key', GENERATE, { 'x-goog-api-key': holder.key, cookie: 'gemgate=session-cookie-value; other=1', origin: stack.url }],
    ['Authorization: Bearer gk_', GENERATE, { authorization: `Bearer ${holder.key}`, 'x-goog-user-project': 'client-project' }],
    ['?key=', `${GENERATE}?key=${holder.key}&alt=json&access_token=client-access-token`, { 'proxy-authorization': 'Basic client-bearer-token' }],
    ['key header beside a Google key in ?key=', `${GENERATE}?%6Bey=AIzaClientGoogleKey`, { 'x-goog-api-key': holder.key, authorization: 'Bearer client-bearer-token' }],
  ]
  for (const [name, path, headers] of calls) {
    const response = await fetch(`${stack.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: BODY })
    t.equal(response.status, 200, `${name}: answered`)
  }
  t.equal(stack.gemini.requests.length, calls.length)
  for (const request of stack.gemini.requests) {
    t.equal(request.headers.authorization, `Bearer ${record!.accessToken}`, 'only the gateway-injected token')
    t.equal(request.headers['x-goog-user-project'], 'billing-project', 'the configured quota project, not the client\'s')
    t.equal(request.headers.cookie, undefined, 'no cookies')
    t.equal(request.headers['x-goog-api-key'], undefined, 'no API key header')
    t.equal(request.headers['proxy-authorization'], undefined, 'no proxy credentials')
    t.notOk('key' in request.query || 'access_token' in request.query, 'no credential in the query')
    for (const secret of secrets) t.notOk(everything(request).includes(secret), `${secret} is nowhere in what the upstream saw`)
  }
  t.equal(stack.gemini.requests[2]?.query.alt, 'json', 'other query parameters pass')
})

t.test('a browser session\'s cookies stay at the gateway', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const cookie = holder.browser.cookieHeader()
  const response = await holder.browser.fetch(GENERATE, { method: 'POST', headers: { origin: stack.url, 'content-type': 'application/json' }, body: BODY })
  t.equal(response.status, 200)
  const [request] = stack.gemini.requests
  t.equal(request?.headers.cookie, undefined)
  t.notOk(everything(request!).includes(cookie.split('=')[1]!.slice(0, 20)), 'the session id is nowhere upstream')
  t.equal(request?.sub, holder.sub)
})

t.test('no credential: 401 in Google\'s error shape, nothing sent', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const attempts: Array<Record<string, string>> = [{}, { 'x-goog-api-key': 'AIzaSomeGoogleKey' }, { authorization: 'Bearer ya29.some-google-token' }]
  for (const headers of attempts) {
    const response = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: BODY })
    t.equal(response.status, 401)
    const body = await response.json() as { error: { code: number, status: string, message: string } }
    t.equal(body.error.code, 401)
    t.equal(body.error.status, 'UNAUTHENTICATED')
  }
  const unknown = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'x-goog-api-key': `gk_${'A'.repeat(43)}` }, body: BODY })
  t.equal(unknown.status, 401, 'an unknown gateway key')
  t.equal(stack.gemini.requests.length, 0)
})
