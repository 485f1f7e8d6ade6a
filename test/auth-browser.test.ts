import t from 'tap'
import { launchChromium } from './helpers/chromium.js'
import { startStack } from './helpers/stack.js'

t.test('a person signs in with a real browser and lands on the page they asked for', async (t) => {
  const stack = await startStack(t)
  const chromium = await launchChromium(t)
  const context = await chromium.newContext()
  const page = await context.newPage()

  await page.goto(`${stack.url}/auth/status`)
  await page.getByRole('link', { name: 'Sign in' }).click()
  await page.waitForURL(`${stack.provider.issuer}/**`)
  await page.fill('input[name=login]', 'alice@example.com')
  await page.fill('input[name=password]', 'any password')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('button', { name: 'Continue' }).click()
  await page.waitForURL(`${stack.url}/auth/status`)

  t.match(await page.textContent('h1'), 'Signed in as Alice Example')
  t.match(await page.textContent('body'), 'alice@example.com')
  const cookies = await context.cookies(stack.url)
  const session = cookies.find((cookie) => cookie.name === 'gemgate')
  t.ok(session, 'the browser holds a session cookie')
  t.equal(session?.httpOnly, true, 'which page scripts cannot read')
  t.equal(cookies.filter((cookie) => /token/i.test(cookie.name) || /^ey/.test(cookie.value)).length, 0, 'and no token')

  const me = await page.evaluate(async () => await (await fetch('/auth/me')).json()) as { email: string }
  t.equal(me.email, 'alice@example.com', '/auth/me from the page shows the email')
})
