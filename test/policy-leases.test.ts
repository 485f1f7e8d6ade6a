import { createHash } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { buildApp } from '../src/app.js'
import { checksFor, personBase } from '../src/policy/checks.js'
import { LEASE_IDLE_MS } from '../src/policy/leases.js'
import { RESERVE_SCRIPT } from '../src/store/quota.js'
import { personWithKey, signInWithKey, type ProxyStack } from './helpers/person.js'
import { startPolicyStack } from './helpers/policy.js'

const MODEL = 'gemini-3-flash-preview'

async function generate (url: string, key: string, maxOutputTokens = 100): Promise<{ status: number, headers: Headers, tokens: number }> {
  const response = await fetch(`${url}/v1beta/models/${MODEL}:generateContent`, {
    method: 'POST',
    headers: { 'x-goog-api-key': key, 'content-type': 'application/json' },
    body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }], generationConfig: { maxOutputTokens } }),
  })
  const body = await response.json() as { usageMetadata?: { totalTokenCount?: number } }
  return { status: response.status, headers: response.headers, tokens: body.usageMetadata?.totalTokenCount ?? 0 }
}

/** Counts the check-and-reserve scripts Redis runs (its round trips for admission), watched with MONITOR. */
async function reserveScripts (t: Test, stack: ProxyStack): Promise<{ count: () => number }> {
  const sha = createHash('sha1').update(RESERVE_SCRIPT).digest('hex')
  const client = new Redis(stack.redis!.url)
  const monitor = await client.monitor()
  t.teardown(() => { monitor.disconnect(); client.disconnect() })
  let count = 0
  monitor.on('monitor', (_time: string, args: string[]) => {
    if (args[0]?.toLowerCase() === 'evalsha' && args[1] === sha) count++
  })
  return { count: () => count }
}

async function replicas (t: Test, stack: ProxyStack, count: number): Promise<string[]> {
  const urls = [stack.url]
  for (let replica = 2; replica <= count; replica++) {
    const app = await buildApp(stack.config)
    t.teardown(async () => { await app.close() })
    await app.listen({ port: 0, host: '127.0.0.1' })
    urls.push(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`)
  }
  return urls
}

t.test('leases: 3 replicas under concurrent load admit no more than the limit, with far fewer round trips than calls', async (t) => {
  const RPM = 300
  const CALLS = 450
  const stack = await startPolicyStack(t, `policy:\n  - default: true\n    requests_per_minute: ${RPM}\n    tokens_per_day: 100000000\n`)
  const holder = await signInWithKey(stack)
  const urls = await replicas(t, stack, 3)
  const scripts = await reserveScripts(t, stack)
  const started = Date.now()
  const statuses = await Promise.all(Array.from({ length: CALLS }, async (_, index) => (await generate(urls[index % urls.length]!, holder.key)).status))
  const seconds = (Date.now() - started) / 1000
  const admitted = statuses.filter((status) => status === 200).length
  const refilled = Math.ceil(seconds * RPM / 60)
  t.comment(`${admitted} of ${CALLS} admitted in ${seconds.toFixed(2)} s (limit ${RPM}, refill ${refilled}), ${scripts.count()} reserve scripts`)
  t.same(statuses.filter((status) => status !== 200 && status !== 429), [], 'every other call got 429')
  t.ok(admitted <= RPM + refilled, 'leases are reserved in Redis: three replicas admitted no more than one would')
  t.ok(admitted >= RPM * 0.75, 'leases held elsewhere refused early by at most the bound (a quarter of the headroom)')
  t.equal(stack.gemini.requests.length, admitted, 'and only those reached Google')
  // A refusal is always the store's answer (one round trip each): leases only ever admit.
  t.ok(scripts.count() - (CALLS - admitted) < admitted / 2, 'most admitted calls came from a lease, without a round trip')
})

t.test('a lease that lapses is given back: the store counts only what was used', async (t) => {
  const LIMIT = 10_000_000
  const stack = await startPolicyStack(t, `policy:\n  - default: true\n    tokens_per_day: ${LIMIT}\n`)
  const holder = await personWithKey(stack)
  const [other] = await replicas(t, stack, 2).then((urls) => urls.slice(1))
  const [check] = checksFor({ tokens_per_day: LIMIT }, personBase(holder.personId), 'person', stack.app.policy.enforcer.calendar, Date.now())
  const used = async (): Promise<number> => (await stack.app.store.quotaUsed([check!.check]))[0]!
  const call = await generate(stack.url, holder.key)
  t.equal(call.status, 200)
  await sleep(200)
  const whileLeased = await used()
  t.ok(whileLeased > call.tokens, `while leased, the store counts more than the call used (${whileLeased} > ${call.tokens})`)
  let afterLapse = whileLeased
  for (let waited = 0; waited < 4 * LEASE_IDLE_MS && afterLapse !== call.tokens; waited += 100) {
    await sleep(100)
    afterLapse = await used()
  }
  t.equal(afterLapse, call.tokens, 'after the lease lapsed, the store counts what the call used: the rest is free for any replica')
  const elsewhere = await generate(other!, holder.key)
  t.equal(elsewhere.status, 200)
  // The lease held four calls' reservations; the other replica's call reserves one more.
  const reservation = (whileLeased - call.tokens) / 4
  t.equal(elsewhere.headers.get('x-ratelimit-remaining-tokens'), String(LIMIT - call.tokens - reservation), 'another replica sees the whole remainder')
})

t.test('near a limit, calls are reserved one by one in Redis: no lease', async (t) => {
  const RPM = 8
  const stack = await startPolicyStack(t, `policy:\n  - default: true\n    requests_per_minute: ${RPM}\n`)
  const holder = await personWithKey(stack)
  const scripts = await reserveScripts(t, stack)
  const perCall: number[] = []
  const statuses: number[] = []
  for (let index = 0; index <= RPM; index++) {
    const before = scripts.count()
    statuses.push((await generate(stack.url, holder.key)).status)
    // MONITOR reports a moment later.
    await sleep(150)
    perCall.push(scripts.count() - before)
  }
  t.same(statuses, [...Array<number>(RPM).fill(200), 429], 'exactly the limit admitted')
  t.ok(perCall.slice(0, 4).reduce((sum, count) => sum + count, 0) < 4, 'with headroom, some calls came from a lease')
  t.same(perCall.slice(4), [1, 1, 1, 1, 1], 'near the limit, every call is one check-and-reserve in Redis')
})

t.test('x-ratelimit-* headers on calls that reserve nothing (models.get, countTokens)', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    requests_per_minute: 50\n    tokens_per_minute: 1000000\n')
  const holder = await personWithKey(stack)
  const get = await fetch(`${stack.url}/v1beta/models/${MODEL}`, { headers: { 'x-goog-api-key': holder.key } })
  await get.arrayBuffer()
  t.equal(get.status, 200)
  t.equal(get.headers.get('x-ratelimit-limit-requests'), '50', 'models.get carries the request limit')
  t.equal(get.headers.get('x-ratelimit-remaining-requests'), '50', 'and what is left of it')
  t.equal(get.headers.get('x-ratelimit-limit-tokens'), '1000000')
  t.equal((await generate(stack.url, holder.key)).status, 200)
  const count = await fetch(`${stack.url}/v1beta/models/${MODEL}:countTokens`, {
    method: 'POST',
    headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' },
    body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }),
  })
  await count.arrayBuffer()
  t.equal(count.headers.get('x-ratelimit-limit-requests'), '50', 'countTokens carries them too')
  t.ok(Number(count.headers.get('x-ratelimit-remaining-requests')) < 50, 'from what this replica knows: the call before it counted')
})

t.test('x-ratelimit-* headers on a 429 too: the limit, what is left (none of the refused one) and when it resets', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    requests_per_minute: 2\n    tokens_per_minute: 1000000\n')
  const holder = await personWithKey(stack)
  t.equal((await generate(stack.url, holder.key)).status, 200)
  t.equal((await generate(stack.url, holder.key)).status, 200)
  const refused = await generate(stack.url, holder.key)
  t.equal(refused.status, 429)
  t.equal(refused.headers.get('x-ratelimit-limit-requests'), '2')
  t.equal(refused.headers.get('x-ratelimit-remaining-requests'), '0', 'none left')
  t.match(refused.headers.get('x-ratelimit-reset-requests'), /^\d+s$/, 'and when one is back')
  t.equal(refused.headers.get('x-ratelimit-limit-tokens'), '1000000', 'the token limit beside it')
  t.ok(Number(refused.headers.get('x-ratelimit-remaining-tokens')) > 900_000)
})

t.test('x-ratelimit-* headers on an error after admission too (Google failing), on the fast path and on Fastify\'s', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    requests_per_minute: 50\n    tokens_per_minute: 1000000\n')
  const holder = await personWithKey(stack)
  // No Origin: the fast path; an Origin: Fastify's route.
  for (const origin of [{}, { origin: 'https://elsewhere.example' }] as Array<Record<string, string>>) {
    for (const [fault, status] of [[{ kind: 'status', code: 500 }, 500], [{ kind: 'reset' }, 502]] as const) {
      stack.gemini.fault(fault)
      const failed = await fetch(`${stack.url}/v1beta/models/${MODEL}:generateContent`, {
        method: 'POST',
        headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json', ...origin },
        body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }),
      })
      await failed.arrayBuffer()
      t.equal(failed.status, status, status === 500 ? 'Google\'s error, passed on' : 'the gateway\'s own error')
      t.equal(failed.headers.get('x-ratelimit-limit-requests'), '50', 'carries the limit')
      t.ok(Number(failed.headers.get('x-ratelimit-remaining-requests')) < 50, 'and what is left')
    }
  }
})

t.test('x-ratelimit-* headers on the policy\'s other refusals too: a model not allowed (403), a body it cannot read (400)', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    models: [\'gemini-3-flash*\']\n    requests_per_minute: 50\n    tokens_per_minute: 1000000\n')
  const holder = await personWithKey(stack)
  const notAllowed = await fetch(`${stack.url}/v1beta/models/gemini-3-pro-preview:generateContent`, {
    method: 'POST',
    headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' },
    body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }),
  })
  await notAllowed.arrayBuffer()
  t.equal(notAllowed.status, 403)
  t.equal(notAllowed.headers.get('x-ratelimit-limit-requests'), '50', 'the first answer to this person: read from the store')
  t.equal(notAllowed.headers.get('x-ratelimit-remaining-requests'), '50')
  const unreadable = await fetch(`${stack.url}/v1beta/models/${MODEL}:generateContent`, {
    method: 'POST',
    headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/x-protobuf' },
    body: 'not json',
  })
  await unreadable.arrayBuffer()
  t.equal(unreadable.status, 400)
  t.equal(unreadable.headers.get('x-ratelimit-limit-tokens'), '1000000')
})
