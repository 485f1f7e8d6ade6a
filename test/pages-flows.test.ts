// The small page flows a newcomer tripped over (issue 17, item 3), through real HTTP.
import t from 'tap'
import { startStack } from './helpers/stack.js'

const FORM = { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' }

function submissionOf (page: string): string {
  const match = /name="submission" value="([^"]+)"/.exec(page)
  if (match === null) throw new Error('the key form has no one-time submission id')
  return match[1]!
}

t.test('keys: a reload of "key created" makes no second key; revoking asks first and says it did', async (t) => {
  const stack = await startStack(t, { memory: true })
  const { browser } = await stack.signIn()
  const status = await (await browser.fetch('/auth/status')).text()
  const body = `submission=${submissionOf(status)}&name=laptop`
  const headers = { ...FORM, origin: stack.url }
  const created = await browser.fetch('/auth/keys', { method: 'POST', headers, body })
  t.equal(created.status, 201)
  const reloaded = await browser.fetch('/auth/keys', { method: 'POST', headers, body })
  t.equal(reloaded.status, 409, 'the same form again is refused')
  t.match(await reloaded.text(), 'already created')
  const { keys } = await (await browser.fetch('/auth/keys')).json() as { keys: Array<{ id: string, name: string }> }
  t.equal(keys.length, 1, 'one key, not two')

  const page = await (await browser.fetch('/auth/status')).text()
  t.match(page, /data-confirm="Revoke the key “laptop”/, 'the revoke form asks for confirmation')
  t.match(page, /\d{4}-\d\d-\d\d|never/)
  const revoke = await browser.fetch(`/auth/keys/${keys[0]!.id}/revoke`, { method: 'POST', headers, body: '' })
  t.equal(revoke.status, 303)
  const after = await (await browser.fetch(revoke.headers.get('location')!)).text()
  t.match(after, 'Key “laptop” revoked', 'and says it did')
})

t.test('last-used times carry their time zone', async (t) => {
  const stack = await startStack(t, { memory: true })
  const { browser } = await stack.signIn()
  const created = await browser.fetch('/auth/keys', { method: 'POST', headers: { 'content-type': 'application/json', origin: stack.url }, body: '{"name":"used"}' })
  const { key } = await created.json() as { key: string }
  await fetch(`${stack.url}/v1beta/models`, { headers: { 'x-goog-api-key': key } }).then(async (response) => await response.arrayBuffer())
  let page = ''
  // Last use is recorded in the background: wait for it to show.
  for (let attempt = 0; attempt < 50 && !page.includes(' UTC</td>'); attempt++) {
    page = await (await browser.fetch('/auth/status')).text()
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.match(page, /<td>\d{4}-\d\d-\d\d \d\d:\d\d UTC<\/td>/, 'the last use, in UTC, says so')
})

t.test('sign-out: says so, and /auth/logout when signed out does not ask again', async (t) => {
  const stack = await startStack(t, { memory: true })
  const { browser } = await stack.signIn()
  const out = await browser.fetch('/auth/logout', { method: 'POST', headers: { accept: 'text/html', origin: stack.url } })
  t.equal(out.status, 303)
  const page = await (await browser.fetch(out.headers.get('location')!)).text()
  t.match(page, 'You have been signed out')
  const again = await browser.fetch('/auth/logout', { headers: { accept: 'text/html' } })
  t.equal(again.status, 303, 'no "Sign out?" for someone signed out')
  t.notMatch(await (await browser.fetch(again.headers.get('location')!)).text(), 'Sign out?')
})

t.test('access denied names the refused email', async (t) => {
  const stack = await startStack(t, { memory: true })
  stack.provider.addUser({ sub: 'outsider', email: 'outsider@elsewhere.test', email_verified: true, name: 'Outsider' })
  const { callback } = await stack.signIn({ user: 'outsider' })
  t.equal(callback.status, 403)
  t.match(await callback.text(), 'outsider@elsewhere.test')
})

t.test('a replayed callback in a signed-in browser says the session is fine', async (t) => {
  const stack = await startStack(t, { memory: true })
  const browser = stack.browser()
  const login = await browser.fetch('/auth/login')
  const callbackUrl = await stack.provider.login(login.headers.get('location')!)
  t.equal((await browser.fetch(callbackUrl)).status, 302)
  const replay = await browser.fetch(callbackUrl)
  t.equal(replay.status, 400, 'still refused')
  const text = await replay.text()
  t.match(text, 'already signed in')
  t.notMatch(text, 'Sign in again')
})

t.test('the offline provider is not called Google; an app fronted gets a way back', async (t) => {
  const stack = await startStack(t, { memory: true, env: { APP_UPSTREAM_URL: 'http://127.0.0.1:9' } })
  const { browser } = await stack.signIn()
  const page = await (await browser.fetch('/auth/status')).text()
  t.notMatch(page, 'Your Google access', 'the provider here is not Google')
  t.match(page, 'Back to the app')
  const out = await browser.fetch('/auth/logout', { method: 'POST', headers: { accept: 'text/html', origin: stack.url } })
  const signedOut = await (await browser.fetch(out.headers.get('location')!)).text()
  t.match(signedOut, 'href="/auth/login?rd=/"', 'signing in again returns to the app')
})
