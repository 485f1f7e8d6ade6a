import { GoogleGenAI } from '@google/genai'
import type { Page } from 'playwright-core'
import t from 'tap'
import { usageKey } from '../src/policy/usage.js'
import { startAdminStack } from './helpers/admin.js'
import { launchChromium } from './helpers/chromium.js'
import { openStream } from './helpers/stream.js'

const DAY_MS = 86_400_000
const SHOTS = 'docs/screenshots'

/** Signs in at the fixture provider's form, starting from `url`. */
async function signInAt (page: Page, url: string, email: string): Promise<void> {
  await page.goto(url)
  await page.fill('input[name=login]', email)
  await page.fill('input[name=password]', 'any password')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('button', { name: 'Continue' }).click()
}

t.test('an operator walks the admin pages: finds a person, sees usage, revokes a key, signs out, suspends, lifts', async (t) => {
  const stack = await startAdminStack(t, { SHUTDOWN_DRAIN_SECONDS: '1' })
  // Two weeks of bob's usage, so the chart has something to show.
  for (let daysAgo = 0; daysAgo < 14; daysAgo++) {
    const day = new Date(Date.now() - daysAgo * DAY_MS).toISOString().slice(0, 10)
    await stack.app.store.incrementFields(usageKey(stack.bob.personId, day), { 'gemini-2.5-flash|requests': 5 + daysAgo, 'gemini-2.5-flash|prompt': 2000 + 300 * daysAgo, 'gemini-2.5-flash|output': 900, 'gemini-2.5-flash|nanoUsd': 3_000_000, ...(daysAgo % 3 === 0 ? { 'gemini-2.5-pro|requests': 2, 'gemini-2.5-pro|prompt': 4000, 'gemini-2.5-pro|output': 1500, 'gemini-2.5-pro|nanoUsd': 25_000_000 } : {}) })
  }
  const chromium = await launchChromium(t)
  const context = await chromium.newContext({ viewport: { width: 1000, height: 900 } })
  const page = await context.newPage()

  await signInAt(page, `${stack.url}/auth/login?rd=/auth/admin`, 'alice@example.com')
  await page.waitForURL(`${stack.url}/auth/admin`)
  t.match(await page.textContent('h1'), 'People')
  await page.screenshot({ path: `${SHOTS}/admin-people.png`, fullPage: true })

  await page.fill('input[name=query]', 'bob')
  await page.getByRole('button', { name: 'Search' }).click()
  t.match(await page.textContent('main'), '1 people')
  t.match(await page.textContent('main'), '$0.0280', 'today\'s cost is listed')
  await page.getByRole('link', { name: 'bob@example.com' }).click()
  await page.waitForURL(`${stack.url}/auth/admin/people/${stack.bob.personId}`)
  t.equal(await page.locator('svg[role=img] rect').count() > 14, true, 'the usage chart has a bar per day and model')
  t.match(await page.textContent('main'), 'gemini-2.5-pro')
  t.match(await page.textContent('dl'), /Tokens\s*valid/, 'the token state is shown')
  await page.screenshot({ path: `${SHOTS}/admin-person.png`, fullPage: true })

  // Revoke bob's key: the SDK with it gets 401.
  await page.getByRole('link', { name: 'Revoke…' }).click()
  t.match(await page.textContent('h1'), 'Revoke the key')
  await page.screenshot({ path: `${SHOTS}/admin-confirm.png` })
  await page.getByRole('button', { name: 'Revoke key' }).click()
  await page.waitForURL(`${stack.url}/auth/admin/people/${stack.bob.personId}`)
  t.match(await page.textContent('#keys'), 'No live keys')
  const ai = new GoogleGenAI({ apiKey: stack.bob.key, httpOptions: { baseUrl: stack.url } })
  const refused = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hi' }).then(() => null, (error: unknown) => error as { status?: number })
  t.equal(refused?.status, 401, 'the revoked key gets 401 from the SDK')

  // Sign bob out everywhere: his open stream ends, his browser gets the sign-in page.
  stack.gemini.fault({ kind: 'hang', afterChunks: 1 })
  const stream = await openStream(t, stack.url, { cookie: stack.bob.browser.cookieHeader(), origin: stack.url })
  await page.getByRole('link', { name: 'Sign out everywhere' }).click()
  await page.getByRole('button', { name: 'Sign out everywhere' }).click()
  await page.waitForURL(`${stack.url}/auth/admin/people/${stack.bob.personId}`)
  t.equal(await stream.rest, 'cut', 'bob\'s open stream ended')
  t.match(await (await stack.bob.browser.fetch('/auth/status')).text(), /Sign in/, 'bob\'s browser gets the sign-in page')

  // Suspend: bob's sign-in is refused; lift: it works again.
  await page.getByRole('link', { name: 'Suspend' }).click()
  await page.getByRole('button', { name: 'Suspend' }).click()
  await page.waitForURL(`${stack.url}/auth/admin/people/${stack.bob.personId}`)
  t.match(await page.textContent('main'), 'suspended')
  const bobPage = await (await chromium.newContext()).newPage()
  await signInAt(bobPage, `${stack.url}/auth/login`, 'bob@example.com')
  await bobPage.waitForURL(`${stack.url}/auth/callback**`)
  t.match(await bobPage.textContent('h1'), 'Access suspended', 'bob sees why his sign-in is refused')
  await bobPage.screenshot({ path: `${SHOTS}/admin-suspended.png` })
  await page.getByRole('link', { name: 'Lift suspension' }).click()
  await page.getByRole('button', { name: 'Lift suspension' }).click()
  await page.waitForURL(`${stack.url}/auth/admin/people/${stack.bob.personId}`)
  t.equal((await stack.signIn({ user: 'bob' })).callback.status, 302, 'after lifting, bob signs in')

  await page.setViewportSize({ width: 390, height: 844 })
  await page.goto(`${stack.url}/auth/admin`)
  await page.screenshot({ path: `${SHOTS}/admin-people-phone.png`, fullPage: true })
})
