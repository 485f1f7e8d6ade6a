import type { Page } from 'playwright-core'
import t from 'tap'
import { browserWithSession, otherOrigin } from './helpers/pages.js'
import { startProxyStack } from './helpers/person.js'

const GENERATE = '/v1beta/models/gemini-2.5-flash:generateContent'

/** Calls generateContent from inside the page, as its script would: the status, or the error fetch threw. */
async function callFromPage (page: Page, url: string, contentType: string): Promise<string> {
  return await page.evaluate(async ({ url, contentType }) => {
    try {
      const response = await fetch(url, { method: 'POST', credentials: 'include', headers: { 'content-type': contentType }, body: JSON.stringify({ contents: [{ parts: [{ text: 'from a page' }] }] }) })
      return `${response.status} ${(await response.text()).slice(0, 200)}`
    } catch (error) {
      return `threw ${String(error)}`
    }
  }, { url, contentType })
}

t.test('a page on the gateway\'s origin calls the API with the session cookie; a page on another origin cannot', async (t) => {
  const stack = await startProxyStack(t)
  const page = await browserWithSession(t, stack)
  const other = await otherOrigin(t)

  await page.goto(`${stack.url}/auth/status`)
  const own = await callFromPage(page, GENERATE, 'application/json')
  t.match(own, /^200 .*Echo: from a page/s, 'same origin: answered')
  t.equal(stack.gemini.requests.length, 1)
  t.equal(stack.gemini.requests[0]?.headers.cookie, undefined)
  stack.gemini.clear()

  await page.goto(other)
  t.match(await callFromPage(page, `${stack.url}${GENERATE}`, 'application/json'), /^threw /, 'JSON from another origin: the preflight is refused')
  t.match(await callFromPage(page, `${stack.url}${GENERATE}`, 'text/plain'), /^threw /, 'a "simple" POST from another origin is unreadable')
  t.equal(stack.gemini.requests.length, 0, 'and neither reached the upstream (the cookie-carrying POST got 403)')
})

t.test('an origin listed in CORS_ORIGINS may call the API with the cookie', async (t) => {
  const allowed = await otherOrigin(t)
  const stack = await startProxyStack(t, { env: { CORS_ORIGINS: allowed } })
  const page = await browserWithSession(t, stack)
  await page.goto(allowed)
  t.match(await callFromPage(page, `${stack.url}${GENERATE}`, 'application/json'), /^200 .*Echo: from a page/s)
  t.equal(stack.gemini.requests.length, 1)
})
