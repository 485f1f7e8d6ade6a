import t from 'tap'
import { isPublicPath, normalisedPath } from '../src/sidecar/app-paths.js'
import type { EchoedRequest } from './fixtures/echo-app.js'
import { rawRequest } from './helpers/raw-http.js'
import { NAVIGATION, startSidecarStack } from './helpers/sidecar.js'

/** Request targets that name a public path somewhere, but not as their one unambiguous path. */
const BYPASSES = [
  '/public/../private',
  '/public/%2e%2e/private',
  '/public/%2E%2E/private',
  '/public/.%2e/private',
  '/public/..%2fprivate',
  '/public/..%2Fprivate',
  '/public%2f..%2fprivate',
  '/public/%252e%252e/private',
  '/public/..%5cprivate',
  '/public/..\\private',
  '/public\\..\\private',
  '/public/..;/private',
  '/public;/../private',
  '/public/./../private',
  '//public/../private',
  '/public//../private',
  '/public/%00/../private',
  '/private?/public/',
  '/private?x=/public/',
  '/private?path=%2Fpublic%2F',
  '/private#/public/',
  '/private%23/public/',
  '/private%3f/public/',
  '/private/public/',
  '/PUBLIC/page',
  '/publicity',
  '/favicon.ico.php',
]

t.test('a public path is served signed out; every disguise of a private one still needs sign-in', async (t) => {
  const stack = await startSidecarStack(t)

  for (const target of ['/public/page', '/public/', '/favicon.ico', '/public/a/b.css?v=1', '/%70ublic/page']) {
    const response = await rawRequest(stack.url, 'GET', target)
    t.equal(response.status, 200, `${target} is public`)
    t.equal((JSON.parse(response.body) as EchoedRequest).url, target, 'and reaches the app as sent')
  }
  const servedPublic = stack.echo.requests.length

  for (const target of BYPASSES) {
    const asBrowser = await rawRequest(stack.url, 'GET', target, NAVIGATION)
    t.equal(asBrowser.status, 302, `${target}: a browser is sent to sign in`)
    t.match(asBrowser.headers.location, /^\/auth\/login\?rd=/)
    const asClient = await rawRequest(stack.url, 'GET', target, { accept: 'application/json' })
    t.equal(asClient.status, 401, `${target}: an API client gets 401`)
  }

  for (const header of ['X-Forwarded-Uri', 'X-Original-URL', 'X-Rewrite-URL', 'X-Forwarded-Prefix', 'X-Original-URI']) {
    const response = await rawRequest(stack.url, 'GET', '/private', { [header]: '/public/page', accept: 'application/json' })
    t.equal(response.status, 401, `${header}: /public/page does not make /private public`)
  }
  const absolute = await rawRequest(stack.url, 'GET', `http://127.0.0.1:1/public/page`, { accept: 'application/json' })
  t.ok(absolute.status >= 400, 'an absolute-form target is refused')

  t.equal(stack.echo.requests.length, servedPublic, 'none of the disguised requests reached the app')
})

t.test('signed in, the same targets reach the app exactly as sent (the app sees no other path than the one authorised)', async (t) => {
  const stack = await startSidecarStack(t)
  const { browser } = await stack.signIn()
  const response = await rawRequest(stack.url, 'GET', '/public/../private', { cookie: browser.cookieHeader() })
  t.equal(response.status, 200)
  t.equal((JSON.parse(response.body) as EchoedRequest).url, '/public/../private')
})

t.test('normalisation: one reading or none', async (t) => {
  t.equal(normalisedPath('/public/a%20b'), null, 'a decoded space: servers disagree on it, so no single reading')
  t.equal(normalisedPath('/public/caf%C3%A9'), null, 'non-ASCII after decoding is refused')
  t.equal(normalisedPath('/public/file.txt'), '/public/file.txt')
  t.equal(normalisedPath('/%70ublic/x'), '/public/x')
  for (const target of BYPASSES) t.notOk(isPublicPath(target.split('?')[0]!, ['/public/', '/favicon.ico']), target)
  t.ok(isPublicPath('/assets', ['/assets']), 'a prefix without a slash covers its exact path')
  t.ok(isPublicPath('/assets/x.js', ['/assets']), 'and what is under it')
  t.notOk(isPublicPath('/assetsx', ['/assets']), 'but not a longer name')
  t.notOk(isPublicPath('/anything', []), 'no public paths: nothing is public')
})
