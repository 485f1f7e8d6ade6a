import t from 'tap'
import { AUDIT_LOG_KEY } from '../src/audit/log.js'
import { auditRecord, scrub } from '../src/audit/record.js'
import { startStack } from './helpers/stack.js'
import { signInWithKey } from './helpers/person.js'

type Logged = Record<string, unknown>

function auditLines (lines: string[]): Logged[] {
  return lines.map((line) => JSON.parse(line) as Logged).filter((line) => line.audit === true)
}

t.test('every security event of a person\'s day is one record, in the log stream and in Redis, with no secret in it', async (t) => {
  const logLines: string[] = []
  const stack = await startStack(t, { logLines })
  const holder = await signInWithKey(stack, { name: 'ci' })
  const browser = holder.browser
  t.equal((await browser.fetch(`/auth/keys/${holder.keyId}`, { method: 'DELETE', headers: { origin: stack.url } })).status, 204)
  t.equal((await browser.fetch('/auth/logout', { method: 'POST', headers: { origin: stack.url } })).status, 204)
  stack.provider.addUser({ sub: 'outsider', email: 'mallory@elsewhere.test', name: 'Mallory' })
  const refused = await stack.signIn({ user: 'outsider' })
  t.equal(refused.callback.status, 403, 'someone outside the allow-list is refused')

  const stored = [...await stack.app.store.readLog(AUDIT_LOG_KEY, { fromMs: 0, toMs: Date.now(), count: 100 })].map(({ entry }) => JSON.parse(entry) as Logged)
  const events = stored.map((record) => record.event)
  t.same(events, ['config.loaded', 'sign-in', 'key.created', 'key.revoked', 'sign-out', 'sign-in.refused'], 'each event once, in order')
  const signIn = stored[1]!
  t.equal(signIn.actor, holder.personId)
  t.equal(signIn.outcome, 'success')
  t.match(signIn, { time: String, requestId: String, ip: '127.0.0.1' }, 'when, which request, from where')
  t.equal(stored[2]!.subject, holder.keyId, 'the key record names the key by id')
  t.match(stored[5], { outcome: 'denied', reason: 'allow-list:not-allowed' }, 'a refusal says why')
  t.match(stored[0], { actor: 'system', detail: { fingerprint: /^[0-9a-f]{64}$/ } }, 'the configuration is recorded as a fingerprint')

  t.same(auditLines(logLines).map((line) => line.event), events, 'the same records reach the log stream, marked audit: true')
  const everything = JSON.stringify(stored) + logLines.filter((line) => line.includes('"audit":true')).join('\n')
  for (const [what, secret] of [
    ['the gateway key', holder.key], ['its secret part', holder.key.slice(3)], ['the session cookie', browser.cookieHeader()],
    ['the client secret', stack.config.oidc.clientSecret], ['a cookie secret', stack.config.cookieSecrets[0]!],
    ['the encryption key', stack.config.tokenEncryptionKeys[0]!],
  ] as const) {
    t.notOk(secret !== '' && everything.includes(secret), `no audit record holds ${what}`)
  }
})

t.test('a record blanks any credential that reaches one of its fields', async (t) => {
  const record = auditRecord({
    event: 'key.created', outcome: 'success', subject: 'gk_abcdefghijklmnop', reason: 'Bearer ya29.a0AfH6SM',
    detail: { name: 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln', count: 3 },
  }, { userAgent: `curl ${'x'.repeat(1000)} token 1//0gLongRefreshTokenValue` })
  const text = JSON.stringify(record)
  for (const fragment of ['gk_abc', 'ya29.', 'eyJhbGci', '1//0g']) t.notOk(text.includes(fragment), `no ${fragment}…`)
  t.equal(record.detail?.count, 3, 'plain values stay')
  t.ok(record.userAgent!.length <= 256, 'long text is capped')
  t.equal(scrub('Mozilla/5.0 (X11; Linux x86_64)'), 'Mozilla/5.0 (X11; Linux x86_64)', 'ordinary text passes unchanged')
})

t.test('records older than AUDIT_RETENTION_DAYS leave the store; the log can be read back page by page', async (t) => {
  const stack = await startStack(t, { env: { AUDIT_RETENTION_DAYS: '1' } })
  for (let i = 0; i < 1203; i++) stack.app.audit.record({ event: 'key.revoked', outcome: 'success', subject: `key-${i}` })
  let read: number[] = []
  const deadline = Date.now() + 10_000
  while (read.length < 1204 && Date.now() < deadline) {
    read = []
    for await (const record of stack.app.audit.read(0, Date.now())) read.push(record.subject === undefined ? -1 : Number(record.subject.slice(4)))
  }
  t.equal(read.length, 1204, 'every record comes back across pages (config.loaded + 1203)')
  t.same(read.slice(1, 4), [0, 1, 2], 'oldest first')
  const day = 86_400_000
  await stack.app.store.appendToLog(AUDIT_LOG_KEY, '{}', 1 * day)
  const old = await stack.app.store.readLog(AUDIT_LOG_KEY, { fromMs: 0, toMs: Date.now() - day, count: 10 })
  t.same(old, [], 'nothing older than the retention is kept')
})
