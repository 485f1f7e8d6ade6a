import { readFileSync } from 'node:fs'
import type { BrowserContext } from 'playwright-core'
import t, { type Test } from 'tap'
import { personIdFor } from '../src/auth/person.js'
import { contextWithCookies, startOrigin } from './helpers/chromium.js'
import { startProxyStack, type ProxyStack } from './helpers/person.js'

const ATTACK_SCRIPT = readFileSync(new URL('./fixtures/key-minting-app.js', import.meta.url), 'utf8')
const DAY_MS = 24 * 60 * 60 * 1000

/** A fronted app whose page loads a script that tries to mint a gateway key (test/fixtures/key-minting-app.js). */
async function startMintingApp (t: Test): Promise<string> {
  return await startOrigin(t, (req, res) => {
    if (req.url === '/app/attack.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(ATTACK_SCRIPT)
      return
    }
    res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>app</title><p>An app</p><script src="/app/attack.js"></script>')
  })
}

async function signedInContext (t: Test, stack: ProxyStack): Promise<BrowserContext> {
  const { browser } = await stack.signIn()
  return await contextWithCookies(t, stack.url, browser.cookies)
}

t.test('a script served by the fronted app cannot mint a gateway key with the person\'s cookie', async (t) => {
  const app = await startMintingApp(t)
  const stack = await startProxyStack(t, { env: { APP_UPSTREAM_URL: app } })
  const personId = personIdFor(stack.provider.issuer, stack.provider.defaultUser.sub)
  const context = await signedInContext(t, stack)
  const page = await context.newPage()
  await page.goto(`${stack.url}/app/page`)
  const results = await page.evaluate(async () => await (globalThis as unknown as { attack: () => Promise<Record<string, unknown>> }).attack())
  t.comment(JSON.stringify(results).slice(0, 2000))

  t.match(results.json, /^403 /, 'a JSON create by fetch is refused')
  t.equal(results.tokenFromFetch, '', 'the status page read by fetch carries no form token')
  t.match(results.form, /^403 /, 'a form-encoded create by fetch is refused')
  t.equal(results.frameForm, false, 'the status page does not render in the app\'s frame')
  t.equal(results.popupForm, false, 'a popup of the status page is out of the app\'s reach')
  t.equal(results.sinkKey ?? null, null, 'a form posted into a hidden frame yields nothing readable')
  t.notMatch(JSON.stringify(results), /gk_[\w-]{43}/, 'no key ever reached the app\'s script')
  t.same(await stack.app.keys.list(personId), [], 'and no key was made')
})

t.test('the person still creates a key on the status page, and it lives at most KEY_MAX_DAYS', async (t) => {
  const stack = await startProxyStack(t)
  const context = await signedInContext(t, stack)
  const page = await context.newPage()
  await page.goto(`${stack.url}/auth/status`)
  await page.fill('input[name=name]', 'laptop')
  await Promise.all([page.waitForURL(`${stack.url}/auth/keys`), page.click('form[action="/auth/keys"] button[type=submit]')])
  t.match(await page.textContent('body'), /gk_[\w-]{43}/, 'the created page shows the key once')
  const personId = personIdFor(stack.provider.issuer, stack.provider.defaultUser.sub)
  const [key] = await stack.app.keys.list(personId)
  t.ok(key !== undefined && key.expiresAt !== null && Math.abs(key.expiresAt - (Date.now() + 90 * DAY_MS)) < 60_000, 'a key made without a lifetime expires in 90 days (KEY_MAX_DAYS)')
  await page.goto(`${stack.url}/auth/status`)
  t.match(await page.textContent('#keys'), new Date(key!.expiresAt!).toISOString().slice(0, 10), 'the status page shows when it expires')
})

t.test('KEY_MAX_DAYS caps every key', async (t) => {
  const stack = await startProxyStack(t, { env: { KEY_MAX_DAYS: '30' } })
  const { browser } = await stack.signIn()
  const create = async (body: object) => await browser.fetch('/auth/keys', { method: 'POST', headers: { origin: stack.url, 'content-type': 'application/json' }, body: JSON.stringify(body) })
  t.equal((await create({ name: 'too long', expiresInDays: 31 })).status, 400, 'a longer lifetime is refused')
  const made = await create({ name: 'default' })
  t.equal(made.status, 201)
  const { expiresAt } = await made.json() as { expiresAt: string }
  t.ok(Math.abs(Date.parse(expiresAt) - (Date.now() + 30 * DAY_MS)) < 60_000, 'the default is KEY_MAX_DAYS')
  const personId = personIdFor(stack.provider.issuer, stack.provider.defaultUser.sub)
  const { key } = await stack.app.keys.create(personId, 'made directly', 3650)
  const direct = (await stack.app.keys.list(personId)).find((listed) => listed.id === key.id)
  t.ok(direct !== undefined && direct.expiresAt! <= Date.now() + 30 * DAY_MS + 60_000, 'the key store caps a direct create too')
})
