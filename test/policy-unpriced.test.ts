import t from 'tap'
import { signInWithKey } from './helpers/person.js'
import { startPolicyStack } from './helpers/policy.js'

// Issue 14: a budget must not be escaped by calling a model method the gateway cannot price ahead
// (Imagen's :predict, Veo's :predictLongRunning, batch mode's :batchGenerateContent: billed per
// image, per second of video, or later), nor a request rate by calling one.

const call = async (url: string, key: string, method: string): Promise<Response> => await fetch(`${url}/v1beta/models/imagen-4.0-generate-001:${method}`, {
  method: 'POST',
  headers: { 'x-goog-api-key': key, 'content-type': 'application/json' },
  body: JSON.stringify({ instances: [{ prompt: 'a fox' }] }),
})

const answered = (status: number) => (_req: unknown, res: import('node:http').ServerResponse) => {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end('{}')
}

t.test('budget escape by an unpriced method: with a token or dollar limit, :predict, :predictLongRunning and :batchGenerateContent are refused before Google is asked', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    usd_per_day: 1\n')
  const holder = await signInWithKey(stack)
  for (const method of ['predict', 'predictLongRunning', 'batchGenerateContent', 'someFutureMethod']) {
    const response = await call(stack.url, holder.key, method)
    t.equal(response.status, 403, `:${method} refused`)
    const body = await response.json() as { error: { status: string, message: string } }
    t.equal(body.error.status, 'PERMISSION_DENIED')
    t.match(body.error.message, new RegExp(`:${method} calls`), 'the message names the method')
    t.match(body.error.message, /usd per day/, 'and the limit that forbids it')
  }
  t.equal(stack.gemini.requests.length, 0, 'Google was never asked')
  const metrics = await (await fetch(`${stack.url}/metrics`)).text()
  t.match(metrics, /gemgate_policy_denials_total\{reason="unpriced"\} 4/)

  // countTokens costs nothing: still answered under a budget.
  const counted = await call(stack.url, holder.key, 'countTokens')
  t.not(counted.status, 403, 'countTokens is not refused')
})

t.test('a request rate counts unpriced calls too: the third :predict of a two-a-minute rule is refused with 429', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    requests_per_minute: 2\n')
  const holder = await signInWithKey(stack)
  stack.gemini.onNext(answered(200))
  stack.gemini.onNext(answered(200))
  const first = await call(stack.url, holder.key, 'predict')
  t.equal(first.status, 200)
  t.equal(first.headers.get('x-ratelimit-remaining-requests'), '1')
  t.equal((await call(stack.url, holder.key, 'predictLongRunning')).status, 200)
  const third = await call(stack.url, holder.key, 'predict')
  t.equal(third.status, 429)
  t.match(await third.json(), { error: { status: 'RESOURCE_EXHAUSTED' } })
  t.equal(stack.gemini.requests.length, 2, 'the refused call never reached Google')
})

t.test('without limits, unpriced methods pass as before', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    models: [\'imagen-*\']\n')
  const holder = await signInWithKey(stack)
  stack.gemini.onNext(answered(200))
  t.equal((await call(stack.url, holder.key, 'predict')).status, 200)
})

t.test('allow-list and budget escape by the Interactions API: its model is checked, and it is unpriced like :predict', async (t) => {
  const interact = async (url: string, key: string, body: Record<string, unknown>): Promise<Response> => await fetch(`${url}/v1beta/interactions`, {
    method: 'POST',
    headers: { 'x-goog-api-key': key, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const stack = await startPolicyStack(t, `policy:
  - match: { emails: ['spender@example.com'] }
    usd_per_day: 1
  - default: true
    models: ['gemini-*-flash*']
    requests_per_minute: 1
`)
  const limited = await signInWithKey(stack)
  const denied = await interact(stack.url, limited.key, { model: 'gemini-3-pro-preview', input: 'hi' })
  t.equal(denied.status, 403, 'a model outside the allow-list')
  t.match(await denied.json(), { error: { status: 'PERMISSION_DENIED', message: /gemini-3-pro-preview is not allowed/ } })
  t.equal((await interact(stack.url, limited.key, { agent: 'deep-research-pro-preview', input: 'hi' })).status, 403, 'an agent names no model the allow-list can pass')
  stack.gemini.onNext(answered(200))
  t.equal((await interact(stack.url, limited.key, { model: 'gemini-3-flash-preview', input: 'hi' })).status, 200)
  t.equal((await interact(stack.url, limited.key, { model: 'gemini-3-flash-preview', input: 'again' })).status, 429, 'one request a minute')

  stack.provider.addUser({ sub: 'spender', email: 'spender@example.com' })
  const spender = await signInWithKey(stack, { user: 'spender' })
  const refused = await interact(stack.url, spender.key, { model: 'gemini-3-flash-preview', input: 'hi' })
  t.equal(refused.status, 403)
  t.match(await refused.json(), { error: { message: /interactions calls/ } })
  t.equal(stack.gemini.requests.length, 1, 'only the admitted call reached Google')
})

// A path naming a model that is not the shape `models/{model}` or `models/{model}:{method}` (a
// trailing slash, a segment or a `;` parameter after the method, a method named twice) was no
// model call to the policy, so it passed with neither the allow-list nor any limit checked: free
// and unlimited, if the upstream reads the path more loosely than the gateway.
const SHAPELESS = [
  ':generateContent/',
  ':generateContent;alt=sse',
  ':generateContent/extra',
  ':generateContent:generateContent',
  '/:generateContent',
  ';v=1:generateContent',
]

t.test('budget escape by a model path the policy cannot parse: a POST naming a model in any other shape is unpriced, 403 under a token or dollar limit', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 100000\n')
  const holder = await signInWithKey(stack)
  for (const tail of SHAPELESS) {
    const response = await fetch(`${stack.url}/v1beta/models/gemini-3.8-flash${tail}`, {
      method: 'POST',
      headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' },
      body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }], generationConfig: { maxOutputTokens: 60000 } }),
    })
    t.equal(response.status, 403, `models/gemini-3.8-flash${tail} refused`)
    t.match(await response.json(), { error: { status: 'PERMISSION_DENIED' } })
  }
  t.equal(stack.gemini.requests.length, 0, 'Google was never asked')
})

t.test('allow-list escape by a model path the policy cannot parse: the model such a path names is checked', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    models: [\'gemini-*-flash*\']\n')
  const holder = await signInWithKey(stack)
  for (const tail of SHAPELESS) {
    const response = await fetch(`${stack.url}/v1beta/models/gemini-3-pro-preview${tail}`, {
      method: 'POST',
      headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' },
      body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }),
    })
    t.equal(response.status, 403, `models/gemini-3-pro-preview${tail} refused`)
    t.match(await response.json(), { error: { status: 'PERMISSION_DENIED', message: /gemini-3-pro-preview is not allowed/ } })
  }
  t.equal(stack.gemini.requests.length, 0, 'Google was never asked')
  // An allowed model in such a shape passes to Google, which answers it as it will.
  stack.gemini.onNext(answered(404))
  const allowed = await fetch(`${stack.url}/v1beta/models/gemini-3-flash-preview:generateContent/`, {
    method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' }, body: '{}',
  })
  t.equal(allowed.status, 404)
  t.equal(stack.gemini.requests.length, 1)
})

t.test('allow-list and budget escape by letter case: Models/, TUNEDMODELS/ and Interactions are read like their lower-case names', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    models: [\'gemini-*-flash*\']\n    tokens_per_day: 100000\n')
  const holder = await signInWithKey(stack)
  const post = async (path: string, body: Record<string, unknown>): Promise<Response> => await fetch(`${stack.url}${path}`, {
    method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' }, body: JSON.stringify(body),
  })
  for (const path of ['/v1beta/Models/gemini-3-pro-preview:generateContent', '/v1beta/MODELS/gemini-3-pro-preview:streamGenerateContent', '/v1beta/TunedModels/gemini-3-pro-preview:generateContent']) {
    const response = await post(path, { contents: [{ parts: [{ text: 'hi' }] }] })
    t.equal(response.status, 403, `${path}: the model is checked`)
    t.match(await response.json(), { error: { message: /gemini-3-pro-preview is not allowed/ } })
  }
  const interaction = await post('/v1beta/Interactions', { model: 'gemini-3-flash-preview', input: 'hi' })
  t.equal(interaction.status, 403, 'an interaction in any case is unpriced')
  t.match(await interaction.json(), { error: { message: /Interactions calls|interactions calls/ } })
  for (const path of ['/v1beta/Models', '/v1beta/models/', '/v1/MODELS/', '/v1beta/models;x=1']) {
    const list = await fetch(`${stack.url}${path}`, { headers: { 'x-goog-api-key': holder.key } })
    t.equal(list.status, 400, `${path}: no unfiltered models.list`)
    t.match(await list.json(), { error: { status: 'INVALID_ARGUMENT', message: /List models at \/v1(beta)?\/models/ } })
  }
  t.equal(stack.gemini.requests.length, 0, 'Google was never asked')
  // An allowed model, in another case, is reserved for like any call (its output cap lowered to what the day has left).
  stack.gemini.onNext(answered(200))
  const allowed = await post('/v1beta/Models/gemini-3-flash-preview:generateContent', { contents: [{ parts: [{ text: 'hi' }] }], generationConfig: { maxOutputTokens: 500000 } })
  t.equal(allowed.status, 200)
  t.ok(allowed.headers.get('x-ratelimit-remaining-tokens') !== null, 'it was reserved for')
  t.equal(stack.gemini.requests.length, 1)
})
