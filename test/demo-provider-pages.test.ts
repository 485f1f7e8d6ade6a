// The demo's embedded provider pages: the gateway's look, the demo user shown, the typed email
// kept after a wrong password, and a consent screen that names the demo, not a test client.
import t from 'tap'
import { Browser, startStack } from './helpers/stack.js'

const HINT = 'Demo user: demo@example.com, password: gemgate'

t.test('sign-in and consent pages of the embedded provider', async (t) => {
  const stack = await startStack(t, { memory: true, provider: { clientName: 'Gemgate demo', signInHint: HINT } })
  stack.provider.addUser({ sub: 'demo', email: 'demo@example.com', email_verified: true, name: 'Demo User', password: 'gemgate' })
  const authorize = (await stack.browser().fetch('/auth/login')).headers.get('location')!
  const provider = new Browser(new URL(stack.provider.issuer).origin)
  const interaction = (await provider.fetch(authorize)).headers.get('location')!
  const loginPage = await (await provider.fetch(interaction)).text()
  t.match(loginPage, HINT, 'shows the demo user')
  t.match(loginPage, '--accent', 'in the gateway\'s colours')

  const action = `${interaction}/login`
  const form = { 'content-type': 'application/x-www-form-urlencoded' }
  const wrong = await provider.fetch(action, { method: 'POST', headers: form, body: 'login=demo%40example.com&password=nope' })
  const retry = await wrong.text()
  t.match(retry, 'wrong password')
  t.match(retry, 'value="demo@example.com"', 'the email stays filled in')

  let next = await provider.fetch(action, { method: 'POST', headers: form, body: 'login=demo%40example.com&password=gemgate' })
  // The provider's own redirects lead to the consent interaction.
  for (let hop = 0; hop < 5 && next.status >= 300 && next.status < 400; hop++) next = await provider.fetch(next.headers.get('location')!)
  const consent = await next.text()
  t.match(consent, 'Gemgate demo', 'the consent screen names the demo')
  t.match(consent, 'data-prompt="consent"')
})
