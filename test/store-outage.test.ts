import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { signInWithKey, startProxyStack } from './helpers/person.js'

const MODEL_PATH = '/v1beta/models/gemini-2.5-flash'
const GRACE_SECONDS = 2
// Well formed, so it is looked up in the store, but in no cache.
const UNKNOWN_KEY = `gk_${'A'.repeat(43)}`

interface GoogleError { error: { code: number, message: string, status: string } }

async function call (url: string, key: string): Promise<Response> {
  return await fetch(`${url}${MODEL_PATH}`, { headers: { 'x-goog-api-key': key } })
}

async function expectUnavailable (t: Test, response: Response, what: string): Promise<void> {
  t.equal(response.status, 503, `${what}: 503`)
  const body = await response.json() as GoogleError
  t.same([body.error.code, body.error.status], [503, 'UNAVAILABLE'], `${what}: Google's error shape`)
  t.notMatch(body.error.message, /at .*\.(js|ts):\d+|Error:/, `${what}: no stack or error class in the body`)
}

function linesMatching (lines: string[], pattern: RegExp): string[] {
  return lines.filter((line) => pattern.test(line))
}

t.test('Redis killed: cached callers are served for the grace period, then everyone gets 503 UNAVAILABLE', async (t) => {
  const logLines: string[] = []
  const stack = await startProxyStack(t, { logLines, env: { STORE_OUTAGE_GRACE_SECONDS: String(GRACE_SECONDS) } })
  const holder = await signInWithKey(stack)
  t.equal((await call(stack.url, holder.key)).status, 200, 'works before (and warms the caches)')

  await stack.redis!.stop()
  const startedAt = Date.now()
  t.equal((await call(stack.url, holder.key)).status, 200, 'a cached key still works right after Redis died')
  await expectUnavailable(t, await call(stack.url, UNKNOWN_KEY), 'an uncached key')

  await sleep(GRACE_SECONDS * 1000 - (Date.now() - startedAt) + 300)
  await expectUnavailable(t, await call(stack.url, holder.key), 'the cached key after the grace period')
  await expectUnavailable(t, await call(stack.url, holder.key), 'again')

  t.equal(linesMatching(logLines, /"msg":"request failed"/).length, 0, 'no error line (with a stack) per request')
  t.equal(linesMatching(logLines, /Redis .*not answering/).length, 1, 'the outage is logged once')

  await stack.redis!.start()
  const metrics = await (await fetch(`${stack.url}/metrics`)).text()
  const errors = Number(/^gemgate_store_errors_total (\d+)/m.exec(metrics)?.[1])
  t.ok(errors >= 3, `store errors are counted (${errors})`)
})

t.test('Redis paused (SIGSTOP): the same bound, and service resumes when Redis answers again', async (t) => {
  const logLines: string[] = []
  const stack = await startProxyStack(t, { logLines, env: { STORE_OUTAGE_GRACE_SECONDS: String(GRACE_SECONDS) } })
  const holder = await signInWithKey(stack)
  t.equal((await call(stack.url, holder.key)).status, 200, 'works before')

  await stack.redis!.pause()
  // A frozen Redis keeps its connections: the gateway learns of the outage from a command that times out.
  await expectUnavailable(t, await call(stack.url, UNKNOWN_KEY), 'an uncached key')
  const detectedAt = Date.now()
  t.equal((await call(stack.url, holder.key)).status, 200, 'the cached key is served during the grace period')
  await sleep(GRACE_SECONDS * 1000 - (Date.now() - detectedAt) + 300)
  await expectUnavailable(t, await call(stack.url, holder.key), 'the cached key after the grace period')

  stack.redis!.resume()
  let status = 0
  for (let attempt = 0; attempt < 50 && status !== 200; attempt++) {
    status = (await call(stack.url, holder.key)).status
    if (status !== 200) await sleep(100)
  }
  t.equal(status, 200, 'served again once Redis answers')
  t.equal(linesMatching(logLines, /"msg":"request failed"/).length, 0, 'no error line per request')
  t.equal(linesMatching(logLines, /Redis .*not answering/).length, 1, 'one line when it went down')
  t.equal(linesMatching(logLines, /Redis .*answers again/).length, 1, 'one line when it came back')
})
