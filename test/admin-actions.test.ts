import { GoogleGenAI } from '@google/genai'
import t from 'tap'
import type { AuditRecord } from '../src/audit/record.js'
import { sameOrigin, startAdminStack, type AdminStack } from './helpers/admin.js'
import { NAVIGATION } from './helpers/sidecar.js'
import { openStream } from './helpers/stream.js'

const MODEL = 'gemini-2.5-flash'

async function auditEvents (stack: AdminStack, event: string): Promise<AuditRecord[]> {
  // The store write follows the log line: give it a moment.
  await new Promise((resolve) => setTimeout(resolve, 50))
  const records: AuditRecord[] = []
  for await (const record of stack.app.audit.read(0, Date.now() + 1000)) if (record.event === event) records.push(record)
  return records
}

async function post (stack: AdminStack, path: string, method = 'POST'): Promise<Response> {
  return await stack.admin.browser.fetch(path, { method, headers: sameOrigin(stack) })
}

/** Makes every session of a person look as if it began `ms` ago (an administrator's sign-in grown old). */
async function ageSessions (stack: AdminStack, personId: string, ms: number): Promise<void> {
  for (const session of await stack.app.sessions.listFor(personId)) {
    const { id, ...record } = session
    await stack.app.store.set(`session:${id}`, JSON.stringify({ ...record, createdAt: record.createdAt - ms, ...(record.authTime === undefined ? {} : { authTime: record.authTime - ms }) }), 3_600_000)
  }
}

t.test('revoking a key: the SDK with it gets 401, and the action is audited', async (t) => {
  const stack = await startAdminStack(t)
  const ai = new GoogleGenAI({ apiKey: stack.bob.key, httpOptions: { baseUrl: stack.url } })
  await ai.models.generateContent({ model: MODEL, contents: 'hello' })
  const response = await post(stack, `/auth/admin/api/keys/${stack.bob.keyId}`, 'DELETE')
  t.equal(response.status, 204)
  const refused = await ai.models.generateContent({ model: MODEL, contents: 'hello' }).then(() => null, (error: unknown) => error as { status?: number })
  t.equal(refused?.status, 401, 'the SDK gets 401')
  t.equal((await post(stack, `/auth/admin/api/keys/${stack.bob.keyId}`, 'DELETE')).status, 404, 'a second revoke finds nothing')
  const [action] = await auditEvents(stack, 'admin.action')
  t.match(action, { actor: stack.admin.personId, actorEmail: 'alice@example.com', subject: stack.bob.personId, detail: { action: 'revoke-key', keyId: stack.bob.keyId } })
})

t.test('signing a person out ends their sessions, keys and open streams; others keep theirs', async (t) => {
  const stack = await startAdminStack(t, { SHUTDOWN_DRAIN_SECONDS: '1' })
  stack.gemini.fault({ kind: 'hang', afterChunks: 1 })
  const stream = await openStream(t, stack.url, { 'x-goog-api-key': stack.bob.key })
  const response = await post(stack, `/auth/admin/api/people/${stack.bob.personId}/sign-out`)
  t.equal(response.status, 204)
  t.equal(await stream.rest, 'cut', 'bob\'s open SSE stream ended')
  t.equal((await stack.bob.browser.fetch('/auth/me')).status, 401, 'bob\'s session is over')
  const page = await stack.bob.browser.fetch('/auth/status', { headers: NAVIGATION })
  t.match(await page.text(), /Sign in/, 'bob\'s browser gets the sign-in page')
  t.equal((await fetch(`${stack.url}/v1beta/models`, { headers: { 'x-goog-api-key': stack.bob.key } })).status, 401, 'bob\'s key is revoked')
  t.equal((await stack.admin.browser.fetch('/auth/me')).status, 200, 'the administrator is still signed in')
  const [action] = await auditEvents(stack, 'admin.action')
  t.match(action, { actor: stack.admin.personId, subject: stack.bob.personId, detail: { action: 'sign-out' } })
  const [signOut] = (await auditEvents(stack, 'sign-out')).filter((record) => record.subject === stack.bob.personId)
  t.match(signOut, { actor: stack.admin.personId }, 'the sign-out record names the administrator as who did it')
})

t.test('a suspended person\'s sign-in is refused with a clear page until it is lifted', async (t) => {
  const stack = await startAdminStack(t)
  t.equal((await post(stack, `/auth/admin/api/people/${stack.bob.personId}/suspend`)).status, 204)
  t.equal((await stack.bob.browser.fetch('/auth/me')).status, 401, 'bob\'s session ended')
  const refused = await stack.signIn({ user: 'bob' })
  t.equal(refused.callback.status, 403, 'bob\'s sign-in is refused')
  t.match(await refused.callback.text(), /Access suspended[\s\S]*suspended your access/)
  t.equal(refused.browser.cookies.has(stack.app.cookieNames.session), false, 'no session was made')
  const list = await (await stack.admin.browser.fetch('/auth/admin/api/people?query=bob')).json() as { people: Array<{ suspended?: boolean }> }
  t.equal(list.people[0]?.suspended, true, 'the list shows the suspension')
  t.match((await auditEvents(stack, 'sign-in.refused')).at(-1), { actor: stack.bob.personId, reason: 'suspended' })

  t.equal((await post(stack, `/auth/admin/api/people/${stack.bob.personId}/unsuspend`)).status, 204)
  const again = await stack.signIn({ user: 'bob' })
  t.equal(again.callback.status, 302, 'after lifting, bob signs in')
  t.equal((await again.browser.fetch('/auth/me')).status, 200)
  t.same((await auditEvents(stack, 'admin.action')).map((record) => record.detail?.action), ['suspend', 'unsuspend'])
  t.equal((await post(stack, '/auth/admin/api/people/nobody-at-all/suspend')).status, 404, 'an unknown person is 404')
  const metrics = await (await fetch(`${stack.url}/metrics`)).text()
  t.match(metrics, /gemgate_security_events_total\{event="sign-in",outcome="success",reason=""\} 3/, 'sign-ins are counted')
  t.match(metrics, /gemgate_security_events_total\{event="sign-in.refused",outcome="denied",reason="suspended"\} 1/, 'refusals by reason')
  t.match(metrics, /gemgate_policy_denials_total\{reason="budget"\} 0/, 'policy denials by reason are exported from the start')
})

t.test('an action needs a recent sign-in: 401 for the API, a fresh sign-in (max_age) for pages, then it works', async (t) => {
  const stack = await startAdminStack(t)
  await ageSessions(stack, stack.admin.personId, 3_600_000)
  t.equal((await stack.admin.browser.fetch('/auth/admin/api/people')).status, 200, 'reading needs no fresh sign-in')
  const api = await post(stack, `/auth/admin/api/people/${stack.bob.personId}/sign-out`)
  t.equal(api.status, 401)
  t.match(await api.json(), { error: { code: 401, status: 'UNAUTHENTICATED', message: /sign in again at .*\/auth\/login\?max_age=0/ } })
  const form = await stack.admin.browser.fetch(`/auth/admin/api/people/${stack.bob.personId}/sign-out`, { method: 'POST', headers: sameOrigin(stack, { ...NAVIGATION, 'content-type': 'application/x-www-form-urlencoded' }), body: '' })
  t.equal(form.status, 303, 'a form post is sent to sign in again')
  const confirmPath = `/auth/admin/people/${stack.bob.personId}/confirm/sign-out`
  t.equal(form.headers.get('location'), `/auth/login?max_age=0&rd=${encodeURIComponent(confirmPath)}`)
  const confirm = await stack.admin.browser.fetch(confirmPath, { headers: NAVIGATION })
  t.equal(confirm.status, 303, 'so is the confirmation page')
  t.equal((await stack.app.sessions.listFor(stack.bob.personId)).length, 1, 'nothing happened to bob')

  const login = await stack.admin.browser.fetch(form.headers.get('location')!)
  t.match(login.headers.get('location'), /[?&]max_age=0(&|$)/, 'the provider is asked for a fresh authentication')
  const callback = await stack.admin.browser.fetch(await stack.provider.login(login.headers.get('location')!))
  t.equal(callback.headers.get('location'), confirmPath, 'the sign-in returns to the confirmation page')
  const sessions = await stack.app.sessions.listFor(stack.admin.personId)
  t.ok(sessions.some((session) => session.authTime !== undefined && Date.now() - session.authTime < 60_000), 'the new session keeps the provider\'s fresh auth_time')
  const page = await stack.admin.browser.fetch(confirmPath, { headers: NAVIGATION })
  t.equal(page.status, 200)
  t.match(await page.text(), /<form method="post" action="\/auth\/admin\/api\/people\/[\w-]+\/sign-out"/)
  const done = await stack.admin.browser.fetch(`/auth/admin/api/people/${stack.bob.personId}/sign-out`, { method: 'POST', headers: sameOrigin(stack, { ...NAVIGATION, 'content-type': 'application/x-www-form-urlencoded' }), body: '' })
  t.equal(done.status, 303)
  t.equal(done.headers.get('location'), `/auth/admin/people/${stack.bob.personId}`, 'back to the person\'s page')
  t.equal((await stack.app.sessions.listFor(stack.bob.personId)).length, 0, 'bob is signed out')
})
