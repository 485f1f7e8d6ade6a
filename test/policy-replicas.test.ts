import type { AddressInfo } from 'node:net'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { signInWithKey } from './helpers/person.js'
import { startPolicyStack } from './helpers/policy.js'

const RPM = 30
const CALLS = 90

t.test('requests_per_minute across 3 replicas on one Redis, under concurrent load: admitted within the bound', async (t) => {
  const stack = await startPolicyStack(t, `policy:\n  - default: true\n    requests_per_minute: ${RPM}\n`)
  const holder = await signInWithKey(stack)
  const urls = [stack.url]
  for (let replica = 2; replica <= 3; replica++) {
    const app = await buildApp(stack.config)
    t.teardown(async () => { await app.close() })
    await app.listen({ port: 0, host: '127.0.0.1' })
    urls.push(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`)
  }
  const started = Date.now()
  const statuses = await Promise.all(Array.from({ length: CALLS }, async (_, index) => {
    const response = await fetch(`${urls[index % urls.length]}/v1beta/models/gemini-3-flash-preview:generateContent`, {
      method: 'POST',
      headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' },
      body: JSON.stringify({ contents: [{ parts: [{ text: `call ${index}` }] }] }),
    })
    await response.arrayBuffer()
    return response.status
  }))
  const seconds = (Date.now() - started) / 1000
  const admitted = statuses.filter((status) => status === 200).length
  const refilled = Math.ceil(seconds * RPM / 60)
  t.comment(`${admitted} of ${CALLS} admitted in ${seconds.toFixed(2)} s (limit ${RPM}, refill in that time ${refilled})`)
  t.same(statuses.filter((status) => status !== 200 && status !== 429), [], 'every other call got 429')
  t.ok(admitted >= RPM, 'the whole limit was usable')
  t.ok(admitted <= RPM + refilled, 'three replicas admitted no more than one would: the limit plus what refilled meanwhile')
  t.equal(stack.gemini.requests.length, admitted, 'and only those reached Google')
})
