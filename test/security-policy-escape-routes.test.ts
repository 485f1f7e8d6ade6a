import { gzipSync } from 'node:zlib'
import t from 'tap'
import { signInWithKey } from './helpers/person.js'
import { startPolicyStack } from './helpers/policy.js'

// Issue 14: a budget or a model allow-list must not be escaped through a route the policy does
// not know (Google's `dynamic/…` model routes, a collection added after this gateway was built,
// a batch updated by PATCH), through Google's own ephemeral tokens (a Live session straight to
// Google, past every limit), through a method override that makes the gateway and Google read a
// request as two different calls, or through a body the gateway cannot read its cost from.

const PROMPT = JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }], generationConfig: { maxOutputTokens: 60000 } })

const answered = (status: number) => (_req: unknown, res: import('node:http').ServerResponse) => {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end('{}')
}

/** Writes that spend, on routes the gateway has no price for. */
const UNKNOWN_WRITES: Array<[string, string]> = [
  ['POST', '/v1beta/dynamic/gemini-3-pro-preview:generateContent'],
  ['POST', '/v1beta/dynamic/gemini-3-pro-preview:streamGenerateContent?alt=sse'],
  ['POST', '/v1beta/Dynamic/some-route:generateContent'],
  ['POST', '/v1beta/environments:create'],
  ['PATCH', '/v1beta/batches/b-1:updateGenerateContentBatch'],
  // A context cache's storage is billed by the hour it is kept: a longer TTL spends.
  ['PATCH', '/v1beta/cachedContents/c-1'],
  ['PUT', '/v1beta/someFutureCollection/x:generate'],
  ['POST', '/v1/someFutureCollection'],
  // A cancel is free only as the method of a plain resource, not after another method.
  ['POST', '/v1beta/dynamic/gemini-3-pro-preview:streamGenerateContent:cancel'],
  ['POST', '/v1beta/batches/b-1;x=:cancel'],
  // The OpenAI-compatible surface in a spelling its own route does not take reaches the Gemini proxy.
  ['POST', '/v1/openai/chat/completions'],
  ['POST', '/v1beta/OpenAI/chat/completions'],
]

t.test('budget escape by a route the gateway does not know: a write it cannot price is refused under a token or dollar limit, before Google is asked', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    usd_per_day: 1\n')
  const holder = await signInWithKey(stack)
  for (const [method, path] of UNKNOWN_WRITES) {
    const response = await fetch(`${stack.url}${path}`, { method, headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' }, body: PROMPT })
    t.equal(response.status, 403, `${method} ${path} refused`)
    t.match(await response.json(), { error: { status: 'PERMISSION_DENIED', message: /cannot price .* calls ahead.*usd per day/ } })
  }
  t.equal(stack.gemini.requests.length, 0, 'Google was never asked')

  // What costs nothing still passes: uploading or registering a file, cancelling, deleting, reading.
  const free: Array<[string, string]> = [
    ['POST', '/upload/v1beta/files'],
    ['POST', '/upload/v1beta/files?upload_id=u-1&upload_protocol=resumable'],
    ['POST', '/v1beta/files:register'],
    ['POST', '/v1beta/batches/b-1:cancel'],
    ['DELETE', '/v1beta/cachedContents/c-1'],
    ['GET', '/v1beta/batches/b-1'],
  ]
  for (const [method, path] of free) {
    stack.gemini.onNext(answered(200))
    const response = await fetch(`${stack.url}${path}`, { method, headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' }, ...(method === 'GET' || method === 'DELETE' ? {} : { body: '{}' }) })
    t.equal(response.status, 200, `${method} ${path} passes`)
  }
  t.equal(stack.gemini.requests.length, free.length)
})

t.test('a request rate counts a write on an unknown route as one request', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    requests_per_minute: 1\n')
  const holder = await signInWithKey(stack)
  const post = async (): Promise<Response> => await fetch(`${stack.url}/v1beta/dynamic/gemini-3-flash-preview:generateContent`, {
    method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' }, body: PROMPT,
  })
  stack.gemini.onNext(answered(200))
  t.equal((await post()).status, 200)
  t.equal((await post()).status, 429, 'the second in the minute is over the rate')
  t.equal(stack.gemini.requests.length, 1)
})

t.test('allow-list escape by a dynamic model route: it names no model the allow-list can pass', async (t) => {
  const stack = await startPolicyStack(t, "policy:\n  - default: true\n    models: ['gemini-*-flash*']\n")
  const holder = await signInWithKey(stack)
  for (const path of ['/v1beta/dynamic/gemini-3-pro-preview:generateContent', '/v1beta/dynamic/gemini-3-flash-preview:streamGenerateContent']) {
    const response = await fetch(`${stack.url}${path}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' }, body: PROMPT })
    t.equal(response.status, 403, `${path} refused`)
    t.match(await response.json(), { error: { status: 'PERMISSION_DENIED', message: /dynamic\/gemini-3-.*-preview is not allowed/ } })
  }
  t.equal(stack.gemini.requests.length, 0, 'Google was never asked')
})

t.test('policy escape by Google\'s own ephemeral token: no auth_tokens request is ever forwarded, on any version or in any case', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    usd_per_day: 1\n')
  const holder = await signInWithKey(stack)
  const body = JSON.stringify({ uses: 1, expireTime: new Date(Date.now() + 600_000).toISOString() })
  for (const [method, path] of [['POST', '/v1beta/auth_tokens'], ['POST', '/v1/auth_tokens'], ['POST', '/v1alpha/AUTH_TOKENS'], ['POST', '/v1alpha/auth_tokens;x=1'], ['GET', '/v1beta/auth_tokens/abc'], ['POST', '/upload/v1beta/auth_tokens']]) {
    const response = await fetch(`${stack.url}${path}`, { method, headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' }, ...(method === 'GET' ? {} : { body }) })
    t.equal(response.status, 400, `${method} ${path} refused`)
    t.match(await response.json(), { error: { status: 'INVALID_ARGUMENT', message: /ephemeral tokens.*POST \/v1alpha\/auth_tokens/i } })
  }
  t.equal(stack.gemini.requests.length, 0, 'Google was never asked for a token')
  // The gateway's own ephemeral tokens are still minted where the SDK asks for them.
  const minted = await fetch(`${stack.url}/v1alpha/auth_tokens`, { method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' }, body })
  t.equal(minted.status, 200)
  t.match(await minted.json(), { name: /^auth_tokens\/gt_/ })
})

t.test('policy escape by a method override: the gateway and Google read the same method, the quota project and content type stay the gateway\'s', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    usd_per_day: 1\n')
  const holder = await signInWithKey(stack)
  stack.gemini.onNext(answered(404))
  const response = await fetch(`${stack.url}/v1beta/dynamic/gemini-3-pro-preview:generateContent?%24httpMethod=POST&$httpMethod=POST&$ct=application/x-protobuf&userProject=elsewhere&%24userProject=elsewhere&alt=json`, {
    headers: { 'x-goog-api-key': holder.key, 'x-http-method-override': 'POST', 'x-http-method': 'POST', 'x-method-override': 'POST' },
  })
  t.equal(response.status, 404, 'a GET, answered by Google as one')
  const [seen] = stack.gemini.requests
  t.equal(seen?.method, 'GET')
  t.same(seen?.query, { alt: 'json' }, 'no method, content-type or quota-project override reaches Google')
  for (const name of ['x-http-method-override', 'x-http-method', 'x-method-override']) t.equal(seen?.headers[name], undefined, `${name} is not forwarded`)
})

t.test('budget escape by a body the gateway cannot read: under a token limit a metered call must be JSON', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 1000000\n')
  const holder = await signInWithKey(stack)
  // A protobuf body (binary, or JSPB's positional arrays) names its output cap and candidate count where no JSON reader looks.
  for (const type of ['application/x-protobuf', 'application/json+protobuf', 'application/x-www-form-urlencoded', 'text/plain']) {
    const response = await fetch(`${stack.url}/v1beta/models/gemini-3-flash-preview:generateContent`, {
      method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': type }, body: '[[[[["hi"]]]],null,[null,null,8,60000]]',
    })
    t.equal(response.status, 400, `${type} refused`)
    // A form post is a browser's, answered with a page; the others get Google's shape.
    t.match(await response.text(), /send it as JSON \(Content-Type: application\/json\)/)
  }
  t.equal(stack.gemini.requests.length, 0, 'Google was never asked')
  for (const type of ['application/json', 'application/json; charset=utf-8', 'Application/JSON']) {
    stack.gemini.onNext(answered(200))
    const response = await fetch(`${stack.url}/v1beta/models/gemini-3-flash-preview:generateContent`, {
      method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': type }, body: PROMPT,
    })
    t.equal(response.status, 200, `${type} passes`)
  }
})

t.test('budget escape by compression the gateway does not read: a body it cannot decompress is refused under a token limit, and a large compressed one is read whole', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_minute: 100000\n', { env: { RETRY_BODY_LIMIT_BYTES: '1024' } })
  const holder = await signInWithKey(stack)
  const post = async (encoding: string, body: Buffer): Promise<Response> => await fetch(`${stack.url}/v1beta/models/gemini-3-flash-preview:generateContent`, {
    method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json', 'content-encoding': encoding }, body,
  })
  // 2 KB of gzip above the kept-body limit holds 200,000 tokens of prompt: twice the minute's tokens.
  const large = gzipSync(Buffer.from(JSON.stringify({ contents: [{ parts: [{ text: 'hello world '.repeat(50_000) }] }] })))
  t.ok(large.length > 1024, 'streamed, not kept')
  const refused = await post('gzip', large)
  t.equal(refused.status, 429, 'reserved for what it holds, not for its compressed size')
  const small = Buffer.from(PROMPT)
  // Compressed twice, in an encoding the gateway does not decode, or not compressed as declared: its size says nothing of its prompt.
  for (const [encoding, body] of [['gzip, gzip', gzipSync(gzipSync(small))], ['compress', small], ['gzip', Buffer.from('not gzip at all')]] as const) {
    const response = await post(encoding, body)
    t.equal(response.status, 400, `${encoding} refused`)
    t.match(await response.json(), { error: { status: 'INVALID_ARGUMENT', message: /cannot decompress/ } })
  }
  // The large one was counted (countTokens: free; a prompt that long is), never generated.
  t.same(stack.gemini.requests.map((request) => request.path.replace(/^.*:/, '')), ['countTokens'], 'Google generated nothing')
})
