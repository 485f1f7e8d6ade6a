import t from 'tap'
import { ADMIN_EMAIL, LISTED_ORIGIN, sameOrigin, startAdminStack, type AdminStack } from './helpers/admin.js'
import { NAVIGATION } from './helpers/sidecar.js'
import type { EchoedRequest } from './fixtures/echo-app.js'
import { headerValue } from './helpers/sidecar.js'

/** Every admin route, as [method, path, kind]; `:person` and `:key` are filled in with bob's. */
const ROUTES: Array<[string, string, 'page' | 'api']> = [
  ['GET', '/auth/admin', 'page'],
  ['GET', '/auth/admin/people/:person', 'page'],
  ['GET', '/auth/admin/people/:person/confirm/sign-out', 'page'],
  ['GET', '/auth/admin/keys/:key/confirm', 'page'],
  ['GET', '/auth/admin/api/people', 'api'],
  ['GET', '/auth/admin/api/people/:person', 'api'],
  ['POST', '/auth/admin/api/people/:person/sign-out', 'api'],
  ['POST', '/auth/admin/api/people/:person/suspend', 'api'],
  ['POST', '/auth/admin/api/people/:person/unsuspend', 'api'],
  ['DELETE', '/auth/admin/api/keys/:key', 'api'],
  ['POST', '/auth/admin/api/keys/:key/revoke', 'api'],
  ['GET', '/auth/admin/api/usage.csv', 'api'],
  ['GET', '/auth/admin/api/usage.jsonl', 'api'],
  ['GET', '/auth/admin/api/audit.jsonl', 'api'],
]

/** Each way someone who is not an administrator's own page may ask: the headers (and cookies) it sends. */
type Caller = (stack: AdminStack, assertion: string) => { headers: Record<string, string>, cookies: 'admin' | 'bob' | 'none' }
const CALLERS: Record<string, Caller> = {
  anonymous: (stack) => ({ headers: sameOrigin(stack), cookies: 'none' }),
  'a non-administrator\'s session': (stack) => ({ headers: sameOrigin(stack), cookies: 'bob' }),
  'the administrator\'s gateway key': (stack) => ({ headers: sameOrigin(stack, { 'x-goog-api-key': stack.admin.key }), cookies: 'none' }),
  'the administrator\'s key as Bearer': (stack) => ({ headers: sameOrigin(stack, { authorization: `Bearer ${stack.admin.key}` }), cookies: 'none' }),
  'the administrator\'s assertion': (stack, assertion) => ({ headers: sameOrigin(stack, { 'x-goog-api-key': assertion }), cookies: 'none' }),
  'a cross-origin page with the administrator\'s cookie': () => ({ headers: { origin: 'https://evil.example' }, cookies: 'admin' }),
  'a cross-site fetch without Origin': () => ({ headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'cors' }, cookies: 'admin' }),
  'a CORS-listed origin with the administrator\'s cookie': () => ({ headers: { origin: LISTED_ORIGIN }, cookies: 'admin' }),
  'Origin: null with the administrator\'s cookie': () => ({ headers: { origin: 'null' }, cookies: 'admin' }),
}

t.test('every admin route refuses everyone but an administrator\'s own session, with 403 and no CORS', async (t) => {
  const stack = await startAdminStack(t)
  const page = await stack.admin.browser.fetch('/page')
  const assertion = headerValue(await page.json() as EchoedRequest, 'x-gemgate-assertion')!
  t.ok(assertion, 'the app got an assertion for alice')
  const fill = (path: string): string => path.replace(':person', stack.bob.personId).replace(':key', stack.bob.keyId)

  for (const [method, route, kind] of ROUTES) {
    for (const [name, caller] of Object.entries(CALLERS)) {
      const { headers, cookies } = caller(stack, assertion)
      const browser = cookies === 'admin' ? stack.admin.browser : cookies === 'bob' ? stack.bob.browser : stack.browser()
      const response = await browser.fetch(fill(route), { method, headers: kind === 'page' ? { ...NAVIGATION, ...headers } : headers })
      const body = await response.text()
      t.equal(response.status, 403, `${method} ${route}: ${name} gets 403 (${body.slice(0, 120)})`)
      t.equal(response.headers.get('access-control-allow-origin'), null, `${method} ${route}: ${name} gets no CORS header`)
      if (kind === 'api') t.match(JSON.parse(body), { error: { code: 403, status: 'PERMISSION_DENIED' } }, `${method} ${route}: ${name} gets Google's error shape`)
      else t.match(body, /Administrators only/, `${method} ${route}: ${name} gets a page`)
    }
  }

  // A CORS preflight for the admin API is refused too.
  const preflight = await stack.browser().fetch('/auth/admin/api/people', { method: 'OPTIONS', headers: { origin: LISTED_ORIGIN, 'access-control-request-method': 'GET' } })
  t.equal(preflight.status, 403, 'a preflight from a listed origin is refused')
  t.equal(preflight.headers.get('access-control-allow-origin'), null)

  // An action with the administrator's cookie but no Origin (nor Referer) fails the CSRF check.
  for (const [method, route] of ROUTES.filter(([method]) => method !== 'GET')) {
    const response = await stack.admin.browser.fetch(fill(route), { method })
    t.equal(response.status, 403, `${method} ${route} without Origin is refused`)
  }
  t.equal((await stack.app.sessions.listFor(stack.bob.personId)).length, 1, 'bob was never touched')

  // The administrator's own session from the gateway's pages gets in (reads; actions are tested elsewhere).
  for (const [, route, kind] of ROUTES.filter(([method]) => method === 'GET')) {
    const response = await stack.admin.browser.fetch(fill(route), { headers: kind === 'page' ? NAVIGATION : {} })
    t.equal(response.status, 200, `${route}: the administrator (${ADMIN_EMAIL}) gets in`)
    await response.arrayBuffer()
  }
  const refused = await stack.app.audit.read(0, Date.now() + 1000)
  let count = 0
  for await (const record of refused) if (record.event === 'admin.refused') count++
  t.ok(count > 0, 'identified refusals are audited')
})

t.test('ADMIN_GROUPS: a member of a listed group administers, matched case-insensitively', async (t) => {
  const stack = await startAdminStack(t, { ADMIN_EMAILS: '', ADMIN_GROUPS: 'Gemgate-Admins', OIDC_GROUPS_CLAIM: 'groups' })
  stack.provider.addUser({ sub: 'carol', email: 'carol@example.com', groups: ['gemgate-admins'] })
  const { browser: carol } = await stack.signIn({ user: 'carol' })
  t.equal((await carol.fetch('/auth/admin/api/people')).status, 200, 'carol is an administrator by group')
  const { browser: alice } = await stack.signIn()
  t.equal((await alice.fetch('/auth/admin/api/people')).status, 403, 'alice, no longer listed by email, is not')
})
