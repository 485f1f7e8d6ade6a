import t from 'tap'
import { startStack } from './helpers/stack.js'

/** The callback URL an attacker would send a victim: a real pending sign-in, the provider's error fields forged. */
async function forgedErrorCallback (stack: Awaited<ReturnType<typeof startStack>>, browser: ReturnType<Awaited<ReturnType<typeof startStack>>['browser']>, error: string, description: string): Promise<string> {
  const login = await browser.fetch('/auth/login')
  const state = new URL(login.headers.get('location')!).searchParams.get('state')!
  const forged = new URL(`${stack.url}/auth/callback`)
  forged.searchParams.set('error', error)
  forged.searchParams.set('error_description', description)
  forged.searchParams.set('state', state)
  return forged.href
}

t.test('attacker-chosen error text on /auth/callback is never shown on the gateway\'s page', async (t) => {
  const stack = await startStack(t)
  const phishing = 'Your account is locked. Call +1 555 0100 to unlock it.'

  t.test('a known error code gets its own fixed message', async (t) => {
    const browser = stack.browser()
    const response = await browser.fetch(await forgedErrorCallback(stack, browser, 'access_denied', phishing))
    t.equal(response.status, 403)
    const page = await response.text()
    t.notMatch(page, 'locked', 'the description is not shown')
    t.notMatch(page, '555', 'not even in part')
    t.match(page, /You cancelled the sign-in|was not allowed/i, 'a fixed message says what happened')
  })

  t.test('an unknown error code is not echoed either', async (t) => {
    const browser = stack.browser()
    const response = await browser.fetch(await forgedErrorCallback(stack, browser, 'call_support_at_555_0100', phishing))
    t.equal(response.status, 403)
    const page = await response.text()
    t.notMatch(page, '555', 'neither the code nor the description is shown')
    t.notMatch(page, 'call_support', 'the unknown code is not shown')
    t.match(page, /sign-in provider did not complete the sign-in/i)
  })
})
