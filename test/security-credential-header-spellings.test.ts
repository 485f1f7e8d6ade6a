import { request as httpRequest } from 'node:http'
import t from 'tap'
import { keyHeaders, signInWithKey } from './helpers/person.js'
import { startSidecarStack, type SidecarStack } from './helpers/sidecar.js'
import type { EchoedRequest } from './fixtures/echo-app.js'

// Issue 12, item 11: gateway keys in `?key=`, `X-Api-Key`, `x_goog_api_key` (underscore
// spelling) or a list-valued `x-goog-api-key`, and identity headers of other proxies
// (Remote-Email, X-WEBAUTH-USER, IAP's X-Goog-Authenticated-User-*), reached the app or the
// upstream. Every spelling of a credential or identity header the gateway owns, or that common
// proxies use, is removed before either sees the request.

const GENERATE = '/v1beta/models/gemini-2.5-flash:generateContent'
const BODY = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] })

/** Identity headers of common auth proxies, in spellings servers fold onto each other. */
const FOREIGN_IDENTITY: Array<[string, string]> = [
  ['Remote-User', 'mallory'], ['Remote-Email', 'mallory@example.com'], ['Remote-Groups', 'admins'], ['Remote_Name', 'Mallory'],
  ['X-WEBAUTH-USER', 'mallory'], ['X-Webauth-Email', 'mallory@example.com'],
  ['X-Goog-Authenticated-User-Email', 'accounts.google.com:mallory@example.com'], ['X-Goog-Authenticated-User-Id', 'accounts.google.com:666'],
  ['X-Goog-IAP-JWT-Assertion', 'eyJhbGciOiJFUzI1NiJ9.e30.sig'], ['X-Auth-Request-Email', 'mallory@example.com'], ['X_Auth_Request_User', 'mallory'],
  ['X-Forwarded-User', 'mallory'], ['X-Forwarded-Email', 'mallory@example.com'], ['X-Remote-User', 'mallory'], ['X-User', 'mallory'],
  ['X-Email', 'mallory@example.com'], ['X-Authenticated-User', 'mallory'], ['X-Amzn-Oidc-Identity', 'mallory'],
  ['Cf-Access-Authenticated-User-Email', 'mallory@example.com'], ['X-MS-Client-Principal-Name', 'mallory'],
]

/** Sends raw header lines (repeated names stay repeated), as fetch cannot. */
async function send (url: string, method: string, lines: Array<[string, string]>, body?: string): Promise<{ status: number, text: string }> {
  return await new Promise((resolve, reject) => {
    // Raw header lines get no Host of their own.
    const request = httpRequest(url, { method, headers: [['Host', new URL(url).host], ...lines].flat() }, (response) => {
      let text = ''
      response.setEncoding('utf8').on('data', (chunk: string) => { text += chunk })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text }))
    })
    request.on('error', reject)
    request.end(body)
  })
}

function credentialSpellings (key: string): Array<[string, string]> {
  return [['X-Api-Key', key], ['x_goog_api_key', key], ['X_Api_Key', key], ['Api-Key', key], ['X-Goog-Api-Key', `not-a-key, ${key}`], ['X-Custom-Token', `Bearer ${key}`]]
}

function seenNames (headers: Array<[string, string]>): string[] {
  return headers.map(([name]) => name.toLowerCase().replace(/_/g, '-'))
}

async function signedIn (stack: SidecarStack) {
  const holder = await signInWithKey(stack)
  return { holder, cookie: holder.browser.cookieHeader() }
}

t.test('the app gets no gateway key and no identity header but the gateway\'s, whatever the spelling', async (t) => {
  const stack = await startSidecarStack(t)
  const { holder, cookie } = await signedIn(stack)
  const answer = await send(`${stack.url}/echo?q=1&key=${holder.key}&other=${encodeURIComponent(holder.key)}`, 'GET', [
    ['Cookie', cookie], ['Accept', 'application/json'], ...credentialSpellings(holder.key), ...FOREIGN_IDENTITY,
  ])
  t.equal(answer.status, 200)
  const seen = JSON.parse(answer.text) as EchoedRequest
  t.notOk(JSON.stringify(seen).includes(holder.key), 'the key is nowhere in what the app got')
  t.match(seen.url, /^\/echo\?q=1(&|$)/, 'other query parameters pass')
  const names = seenNames(seen.headers)
  for (const [name] of FOREIGN_IDENTITY) {
    const canonical = name.toLowerCase().replace(/_/g, '-')
    const own = ['x-forwarded-user', 'x-forwarded-email'].includes(canonical)
    t.equal(names.filter((seenName) => seenName === canonical).length, own ? 1 : 0, `${name}: ${own ? 'only the gateway\'s' : 'removed'}`)
  }
  t.equal(seen.headers.find(([name]) => name.toLowerCase() === 'x-forwarded-email')?.[1], 'alice@example.com')
})

t.test('the upstream gets no credential or identity header but the gateway\'s token, whatever the spelling', async (t) => {
  const stack = await startSidecarStack(t)
  const { holder } = await signedIn(stack)
  const [valid] = Object.entries(keyHeaders(holder))
  const spellings = credentialSpellings(holder.key).filter(([name]) => name !== 'X-Goog-Api-Key')
  const answer = await send(`${stack.url}${GENERATE}`, 'POST', [valid!, ['Content-Type', 'application/json'], ...spellings, ...FOREIGN_IDENTITY], BODY)
  t.equal(answer.status, 200)
  const [seen] = stack.gemini.requests
  t.notOk(JSON.stringify(seen?.headers).includes(holder.key), 'the key is nowhere in what the upstream got')
  const names = Object.keys(seen?.headers ?? {}).map((name) => name.replace(/_/g, '-'))
  for (const [name] of [...spellings, ...FOREIGN_IDENTITY]) t.notOk(names.includes(name.toLowerCase().replace(/_/g, '-')), `${name}: removed`)
})
