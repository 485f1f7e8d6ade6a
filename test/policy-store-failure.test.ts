import { request as httpRequest } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { personWithKey } from './helpers/person.js'
import { startPolicyStack } from './helpers/policy.js'

const RPM = 2
const PAUSED = 5
const POLICY = `policy:\n  - default: true\n    requests_per_minute: ${RPM}\n`

interface Answer { status: number, body: string }

/**
 * Starts calls whose bodies are held back: each is identified (Redis up) and then waits for its
 * body; `release` sends the bodies (Redis down), so admission runs during the outage.
 */
function pausedCalls (url: string, key: string, count: number): { release: () => void, answers: Promise<Answer[]> } {
  const body = JSON.stringify({ contents: [{ parts: [{ text: 'during the outage' }] }] })
  const calls = Array.from({ length: count }, () => {
    let answer!: Promise<Answer>
    const call = httpRequest(`${url}/v1beta/models/gemini-3-flash-preview:generateContent`, {
      method: 'POST', headers: { 'x-goog-api-key': key, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    })
    answer = new Promise((resolve, reject) => {
      call.on('response', (response) => {
        let text = ''
        response.setEncoding('utf8').on('data', (chunk: string) => { text += chunk }).on('end', () => resolve({ status: response.statusCode ?? 0, body: text }))
      }).on('error', reject)
    })
    call.write(body.slice(0, 10))
    return { call, answer, rest: body.slice(10) }
  })
  return { release: () => { for (const { call, rest } of calls) call.end(rest) }, answers: Promise.all(calls.map(({ answer }) => answer)) }
}

async function generate (url: string, key: string): Promise<number> {
  const response = await fetch(`${url}/v1beta/models/gemini-3-flash-preview:generateContent`, {
    method: 'POST', headers: { 'x-goog-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }),
  })
  await response.arrayBuffer()
  return response.status
}

async function outage (t: Test, mode: 'local' | 'closed') {
  const logLines: string[] = []
  const stack = await startPolicyStack(t, POLICY, { env: { POLICY_ON_STORE_FAILURE: mode }, logLines })
  const holder = await personWithKey(stack)
  t.equal(await generate(stack.url, holder.key), 200, 'before: served, counted in Redis')
  const { release, answers } = pausedCalls(stack.url, holder.key, PAUSED)
  await sleep(300)
  await stack.redis!.stop()
  release()
  const during = await answers
  const metrics = await (await fetch(`${stack.url}/metrics`)).text()
  return { stack, during, metrics, logLines }
}

async function afterRestart (t: Test, stack: Awaited<ReturnType<typeof outage>>['stack']): Promise<void> {
  await stack.redis!.start()
  // A fresh, empty Redis: the person signs in again (their key and tokens were in the old one).
  const again = await personWithKey(stack)
  await sleep(1_100)
  const statuses = [await generate(stack.url, again.key), await generate(stack.url, again.key), await generate(stack.url, again.key)]
  t.same(statuses, [200, 200, 429], 'after the restart: enforced in Redis again, from fresh counters')
}

t.test('POLICY_ON_STORE_FAILURE=closed: Redis killed mid-load, calls admitted during the outage get 503, never a free pass', async (t) => {
  const { stack, during } = await outage(t, 'closed')
  t.same(during.map((answer) => answer.status), Array(PAUSED).fill(503), 'every call that reached admission: 503')
  t.match(JSON.parse(during[0]!.body), { error: { code: 503, status: 'UNAVAILABLE', message: /Usage limits cannot be checked/ } })
  t.equal(stack.gemini.requests.length, 1, 'nothing reached Google while the limits could not be checked')
  await afterRestart(t, stack)
})

t.test('POLICY_ON_STORE_FAILURE=local: Redis killed mid-load, each replica enforces its share of the limit, with a warning and a metric', async (t) => {
  const { stack, during, metrics, logLines } = await outage(t, 'local')
  const limited = during.filter((answer) => answer.status === 429)
  t.equal(limited.length, PAUSED - RPM, `this replica's share (${RPM} a minute, one replica) was admitted, the rest got 429`)
  t.ok(during.filter((answer) => answer.status !== 429).every((answer) => !answer.body.includes('Usage limits cannot be checked')), 'the admitted ones were not refused by the policy (they fail later: their tokens are in the dead Redis)')
  t.match(metrics, /gemgate_policy_store_failures_total \d+/)
  t.notMatch(metrics, /gemgate_policy_store_failures_total 0\n/, 'the fallback is counted')
  t.ok(logLines.some((line) => line.includes('policy store unreachable')), 'and logged as a warning')
  await afterRestart(t, stack)
})
