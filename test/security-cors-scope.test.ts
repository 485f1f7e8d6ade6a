import type { Page } from 'playwright-core'
import t, { type Test } from 'tap'
import { contextWithCookies, startOrigin } from './helpers/chromium.js'
import { personIdFor } from '../src/auth/person.js'
import { startSidecarStack, type SidecarStack } from './helpers/sidecar.js'

const GENERATE = '/v1beta/models/gemini-2.5-flash:generateContent'

async function signedInPage (t: Test, stack: SidecarStack): Promise<Page> {
  const { browser } = await stack.signIn()
  return await (await contextWithCookies(t, stack.url, browser.cookies)).newPage()
}

/** What the page's script gets from a credentialed fetch: status and body, or the error fetch threw. */
async function fetchFromPage (page: Page, url: string, init: { method: string, contentType?: string, body?: string }): Promise<string> {
  return await page.evaluate(async ({ url, init }) => {
    try {
      const headers: Record<string, string> = init.contentType === undefined ? {} : { 'content-type': init.contentType }
      const response = await fetch(url, { method: init.method, credentials: 'include', headers, ...(init.body === undefined ? {} : { body: init.body }) })
      return `${response.status} ${(await response.text()).slice(0, 300)}`
    } catch (error) {
      return `threw ${String(error)}`
    }
  }, { url, init })
}

t.test('an origin in CORS_ORIGINS reaches the API with the cookie, and nothing else of the gateway or the app', async (t) => {
  const listed = await startOrigin(t, (_req, res) => { res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>listed</title>') })
  const stack = await startSidecarStack(t, { env: { CORS_ORIGINS: listed } })
  const page = await signedInPage(t, stack)
  const personId = personIdFor(stack.provider.issuer, stack.provider.defaultUser.sub)
  await page.goto(listed)

  const api = await fetchFromPage(page, `${stack.url}${GENERATE}`, { method: 'POST', contentType: 'application/json', body: JSON.stringify({ contents: [{ parts: [{ text: 'from the listed origin' }] }] }) })
  t.match(api, /^200 .*Echo: from the listed origin/s, 'the API answers the listed origin, as CORS_ORIGINS promises')

  const create = await fetchFromPage(page, `${stack.url}/auth/keys`, { method: 'POST', contentType: 'application/json', body: JSON.stringify({ name: 'minted by a listed origin' }) })
  t.match(create, /^threw /, 'creating a key with JSON: the preflight is refused')
  const simple = await fetchFromPage(page, `${stack.url}/auth/keys`, { method: 'POST', contentType: 'text/plain', body: JSON.stringify({ name: 'minted by a listed origin' }) })
  t.match(simple, /^threw /, 'a "simple" POST is unreadable')
  t.same(await stack.app.keys.list(personId), [], 'and neither made a key (the cookie-carrying POST was refused as cross-site)')

  t.match(await fetchFromPage(page, `${stack.url}/auth/keys`, { method: 'GET' }), /^threw /, 'the key list is unreadable')
  t.match(await fetchFromPage(page, `${stack.url}/auth/me`, { method: 'GET' }), /^threw /, '/auth/me is unreadable')
  const before = stack.echo.requests.length
  t.match(await fetchFromPage(page, `${stack.url}/private/page`, { method: 'GET' }), /^threw /, 'the app\'s pages are unreadable')
  t.match(await fetchFromPage(page, `${stack.url}/private/form`, { method: 'POST', contentType: 'text/plain', body: 'x' }), /^threw /)
  t.equal(stack.echo.requests.filter((request) => request.method === 'POST').length, 0, 'and an unsafe request never reached the app')
  t.ok(stack.echo.requests.length - before <= 1, 'at most the readable-by-nobody GET reached the app')

  const logout = await fetchFromPage(page, `${stack.url}/auth/logout`, { method: 'POST', contentType: 'text/plain', body: '' })
  t.match(logout, /^threw /)
  t.equal((await stack.app.store.setMembers(`person:${personId}:sessions`)).length, 1, 'the session survives a sign-out attempt from the listed origin')
})
