// Browsers get a page where they used to get raw JSON; programs keep Google's error shape.
import t from 'tap'
import { freePort } from './fixtures/ports.js'
import { startStack } from './helpers/stack.js'

const HTML = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', 'sec-fetch-mode': 'navigate' }

t.test('an unknown /auth/ path: a page for a browser, JSON for a program', async (t) => {
  const stack = await startStack(t, { memory: true })
  const page = await fetch(`${stack.url}/auth/nope`, { headers: HTML })
  t.equal(page.status, 404)
  t.match(page.headers.get('content-type'), 'text/html')
  t.match(page.headers.get('content-security-policy'), "default-src 'none'")
  t.match(await page.text(), 'Page not found')
  const json = await fetch(`${stack.url}/auth/nope`)
  t.equal(json.status, 404)
  t.same((await json.json() as { error: { status: string } }).error.status, 'NOT_FOUND')
})

t.test('the provider unreachable at sign-in: a 503 page saying to try again', async (t) => {
  const stack = await startStack(t, { memory: true, env: { OIDC_ISSUER: `http://127.0.0.1:${await freePort()}` } })
  const page = await fetch(`${stack.url}/auth/login`, { headers: HTML, redirect: 'manual' })
  t.equal(page.status, 503)
  t.match(page.headers.get('content-type'), 'text/html')
  t.match(await page.text(), /Temporarily unavailable[\s\S]*try again/)
  const json = await fetch(`${stack.url}/auth/login`, { redirect: 'manual' })
  t.equal(json.status, 503)
  t.equal((await json.json() as { error: { status: string } }).error.status, 'UNAVAILABLE')
})

t.test('the key form sent without a name: a page naming the field, not the schema', async (t) => {
  const stack = await startStack(t, { memory: true })
  const { browser } = await stack.signIn()
  const page = await browser.fetch('/auth/keys', {
    method: 'POST',
    headers: { ...HTML, 'content-type': 'application/x-www-form-urlencoded', origin: stack.url },
    body: 'name=+++',
  })
  t.equal(page.status, 400)
  t.match(page.headers.get('content-type'), 'text/html')
  const text = await page.text()
  t.match(text, 'name')
  t.notMatch(text, 'must match pattern', 'no schema wording')
})
