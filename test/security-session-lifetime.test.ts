import t from 'tap'
import { personIdFor } from '../src/auth/person.js'
import { startStack, type Stack } from './helpers/stack.js'

const DAY_SECONDS = 24 * 60 * 60

/** Rewrites a session's start in the store, as if the person had signed in `ageSeconds` ago. */
async function ageSession (stack: Stack, ageSeconds: number): Promise<void> {
  const personId = personIdFor(stack.provider.issuer, stack.provider.defaultUser.sub)
  const [sessionId] = await stack.app.store.setMembers(`person:${personId}:sessions`)
  const key = `session:${sessionId!}`
  const session = JSON.parse((await stack.app.store.get(key))!) as { createdAt: number }
  await stack.app.store.set(key, JSON.stringify({ ...session, createdAt: Date.now() - ageSeconds * 1000 }), stack.config.sessionTtlSeconds * 1000)
}

// A stolen cookie used every few hours would otherwise live forever: the idle TTL alone is
// renewed by each use, so only an absolute lifetime bounds it.
t.test('a session in daily use still ends SESSION_MAX_SECONDS after sign-in', async (t) => {
  t.test('the default is 7 days', async (t) => {
    const stack = await startStack(t)
    t.equal(stack.config.sessionMaxSeconds, 7 * DAY_SECONDS)
    const { browser } = await stack.signIn()
    await ageSession(stack, 7 * DAY_SECONDS + 60)
    const me = await browser.fetch('/auth/me')
    t.equal(me.status, 401, 'the idle TTL is still running, but the session is over')
    t.notOk(browser.cookies.has('gemgate'), 'and its cookie is cleared')
  })

  t.test('a shorter SESSION_MAX_SECONDS bounds the idle renewal, the cookie and /auth/me', async (t) => {
    const stack = await startStack(t, { env: { SESSION_MAX_SECONDS: '3600', SESSION_TTL_SECONDS: '86400' } })
    const { browser, callback } = await stack.signIn()
    const cookie = callback.headers.getSetCookie().find((line) => line.startsWith('gemgate='))!
    t.match(cookie, /Max-Age=3600\b/, 'the cookie lives no longer than the session may')
    await ageSession(stack, 3000)
    const me = await browser.fetch('/auth/me')
    t.equal(me.status, 200, 'still within the hour')
    const { sessionExpiresAt } = await me.json() as { sessionExpiresAt: string }
    const endsIn = Date.parse(sessionExpiresAt) - Date.now()
    t.ok(endsIn > 500_000 && endsIn <= 600_000, `sessionExpiresAt is the absolute end, not the idle one (${endsIn} ms)`)
  })

  t.test('past a shorter SESSION_MAX_SECONDS the session ends', async (t) => {
    const stack = await startStack(t, { env: { SESSION_MAX_SECONDS: '3600', SESSION_TTL_SECONDS: '86400' } })
    const { browser } = await stack.signIn()
    await ageSession(stack, 3601)
    t.equal((await browser.fetch('/auth/me')).status, 401)
    t.equal((await browser.fetch('/auth/status')).status, 200, 'the status page shows the signed-out state')
  })
})
