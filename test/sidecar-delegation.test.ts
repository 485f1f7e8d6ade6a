import { GoogleGenAI } from '@google/genai'
import t from 'tap'
import { personIdFor } from '../src/auth/person.js'
import type { EchoedRequest } from './fixtures/echo-app.js'
import type { Browser } from './helpers/stack.js'
import { headerValue, startSidecarStack, type SidecarStack } from './helpers/sidecar.js'

const MODEL = 'gemini-2.5-flash'

/** What the app's backend has: the assertion the gateway passed on with a page request. */
async function assertionFromApp (browser: Browser): Promise<string> {
  const page = await browser.fetch('/dashboard')
  return headerValue(await page.json() as EchoedRequest, 'x-gemgate-assertion')!
}

async function signedInWithAssertion (stack: SidecarStack) {
  const { browser } = await stack.signIn()
  const assertion = await assertionFromApp(browser)
  const personId = personIdFor(stack.provider.issuer, 'alice')
  return { browser, assertion, personId }
}

t.test('the app\'s backend, holding only the assertion, calls Gemini through the gateway as the person', async (t) => {
  const stack = await startSidecarStack(t, { gemini: { chunkCount: 3, chunkDelayMs: 1 } })
  const { assertion, personId } = await signedInWithAssertion(stack)
  const record = await stack.app.vault.load(personId)
  const ai = new GoogleGenAI({ apiKey: assertion, httpOptions: { baseUrl: stack.url } })

  const generated = await ai.models.generateContent({ model: MODEL, contents: 'hello from the app' })
  t.equal(generated.text, 'Echo: hello from the app')
  const chunks: string[] = []
  for await (const chunk of await ai.models.generateContentStream({ model: MODEL, contents: 'one two three' })) chunks.push(chunk.text ?? '')
  t.equal(chunks.length, 3, 'streamed in chunks')
  t.equal(chunks.join(''), 'Echo: one two three')

  t.equal(stack.gemini.requests.length, 2)
  t.ok(stack.gemini.requests.every((request) => request.sub === 'alice'), 'Gemini saw the person')
  t.ok(stack.gemini.requests.every((request) => request.token === record!.accessToken), 'with their access token')
  t.ok(stack.gemini.requests.every((request) => request.apiKey === undefined), 'never the assertion')

  const bearer = await fetch(`${stack.url}/v1beta/models/${MODEL}:generateContent`, {
    method: 'POST',
    headers: { authorization: `Bearer ${assertion}`, 'content-type': 'application/json' },
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'as bearer' }] }] }),
  })
  t.equal(bearer.status, 200, 'Authorization: Bearer works as well as x-goog-api-key')
  t.notOk(JSON.stringify(stack.gemini.requests.at(-1)!.headers).includes(assertion), 'the assertion is not forwarded upstream')

  const me = await fetch(`${stack.url}/auth/me`, { headers: { 'x-goog-api-key': assertion } })
  t.match(await me.json(), { sub: 'alice', email: 'alice@example.com' }, '/auth/me knows the person behind the assertion')
})

t.test('an expired or tampered assertion gets 401, and so does one whose person signed out', async (t) => {
  const stack = await startSidecarStack(t)
  const { browser, assertion } = await signedInWithAssertion(stack)
  const profile = { sub: 'alice', email: 'alice@example.com', name: 'Alice Example' }
  const call = async (apiKey: string) => await fetch(`${stack.url}/v1beta/models/${MODEL}:generateContent`, {
    method: 'POST',
    headers: { 'x-goog-api-key': apiKey, 'content-type': 'application/json' },
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
  })

  t.equal((await call(assertion)).status, 200, 'the fresh assertion works')
  // Signed with the real key, but issued ten minutes ago: five minutes of life, past any clock tolerance.
  const expired = await stack.app.assertions.issue(profile, Date.now() - 10 * 60_000)
  const expiredAnswer = await call(expired)
  t.equal(expiredAnswer.status, 401)
  t.match(await expiredAnswer.json(), { error: { code: 401, status: 'UNAUTHENTICATED', message: /expired or is invalid/ } })

  const [header, payload, signature] = assertion.split('.') as [string, string, string]
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString())
  const asBob = Buffer.from(JSON.stringify({ ...claims, sub: 'bob' })).toString('base64url')
  t.equal((await call(`${header}.${asBob}.${signature}`)).status, 401, 'another sub under the same signature')
  const flipped = signature.slice(0, 10) + (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11)
  t.equal((await call(`${header}.${payload}.${flipped}`)).status, 401, 'a changed signature')
  t.equal(stack.gemini.requests.length, 1, 'only the valid call reached Gemini')

  const sdk = new GoogleGenAI({ apiKey: expired, httpOptions: { baseUrl: stack.url } })
  const refused = await sdk.models.generateContent({ model: MODEL, contents: 'x' }).then(() => null, (error: unknown) => error)
  t.match(refused, { status: 401 }, 'the SDK surfaces the 401')

  const logout = await browser.fetch('/auth/logout', { method: 'POST', headers: { origin: stack.url } })
  t.ok(logout.status < 400, 'signed out')
  const afterLogout = await call(assertion)
  t.equal(afterLogout.status, 401, 'an unexpired assertion no longer speaks for a person who signed out')
  t.match(await afterLogout.json(), { error: { message: /sign in again/ } })
})
