import type { ServerResponse } from 'node:http'
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib'
import { GoogleGenAI } from '@google/genai'
import t, { type Test } from 'tap'
import type { RecordedRequest, RequestHandler } from './fixtures/gemini.js'
import { signInWithKey } from './helpers/person.js'
import { contextCacheStack, eventually, startPolicyStack } from './helpers/policy.js'

interface Usage { promptTokenCount: number, candidatesTokenCount: number, totalTokenCount: number, cachedContentTokenCount?: number }
interface Me {
  limits: Array<{ name: string, limit: number, used: number, remaining: number }>
  policy: { today: { usd: number, byModel: Record<string, { requests: number, prompt: number, output: number, thinking: number, usd: number }> } }
}

/**
 * The output cap Google would honour. Its JSON takes a field by its camelCase or its proto name
 * (`generation_config.max_output_tokens`); where a body names a cap more than once (two spellings,
 * a key twice), the largest: whichever Google picks, a gateway must not count on the other.
 */
function askedOutput (request: RecordedRequest): number {
  return largestNamed(request, /"max(?:OutputTokens|_output_tokens)"\s*:\s*"?(\d+)/g) ?? 65_536
}

/** How many candidates Google would answer with (each up to the output cap), by the same rule. */
function askedCandidates (request: RecordedRequest): number {
  return largestNamed(request, /"candidate(?:Count|_count)"\s*:\s*"?(\d+)/g) ?? 1
}

function largestNamed (request: RecordedRequest, pattern: RegExp): number | undefined {
  const values = [...request.rawBody.toString('utf8').matchAll(pattern)].map((match) => Number(match[1]))
  return values.length === 0 ? undefined : Math.max(...values)
}

/** Answers like Google: at most the request's maxOutputTokens of output, the usage in the last chunk. */
function googleLike (output: number, options: { modelVersion?: string, usage?: Usage } = {}): RequestHandler {
  return (_req, res: ServerResponse, request: RecordedRequest) => {
    const served = Math.min(askedOutput(request), output) * askedCandidates(request)
    const usage = options.usage ?? { promptTokenCount: 1, candidatesTokenCount: served, totalTokenCount: 1 + served }
    const chunk = (text: string, last: boolean) => ({
      candidates: [{ content: { role: 'model', parts: [{ text }] }, index: 0, ...(last ? { finishReason: 'MAX_TOKENS' } : {}) }],
      ...(last ? { usageMetadata: usage } : {}),
      modelVersion: options.modelVersion ?? 'gemini-3-flash-preview',
    })
    if (request.query.alt === 'sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(`data: ${JSON.stringify(chunk('many ', false))}\r\n\r\n`)
      res.end(`data: ${JSON.stringify(chunk('words', true))}\r\n\r\n`)
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(chunk('many words', true)))
  }
}

const me = async (browser: { fetch: (path: string) => Promise<Response> }): Promise<Me> => await (await browser.fetch('/auth/me')).json() as Me

t.test('a streaming call that would pass the token budget: maxOutputTokens lowered, the budget kept, 429 next, the SDK retries into the next window', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_minute: 600\n')
  const holder = await signInWithKey(stack)
  stack.gemini.onNext(googleLike(1_000))
  const stream = await fetch(`${stack.url}/v1beta/models/gemini-3-flash-preview:streamGenerateContent?alt=sse`, {
    method: 'POST',
    headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' },
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hello' }] }], generationConfig: { maxOutputTokens: 1_000 } }),
  })
  t.equal(stream.status, 200)
  const granted = Number(stream.headers.get('x-gemgate-max-output-tokens'))
  t.ok(granted >= 32 && granted < 600, `maxOutputTokens lowered to ${granted}, and said so`)
  t.equal(stream.headers.get('x-ratelimit-limit-tokens'), '600')
  await stream.text()
  const forwarded = stack.gemini.requests.at(-1)!.body as { generationConfig: { maxOutputTokens: number } }
  t.equal(forwarded.generationConfig.maxOutputTokens, granted, 'Google was asked for no more than the budget pays for')

  const settled = await eventually(async () => await me(holder.browser), (view) => view.limits[0]!.used > 0 && view.limits[0]!.used < granted + 10)
  const used = settled.limits[0]!.used
  t.ok(used <= 600, `the person ended within the budget (${used} of 600 tokens)`)

  const refused = await fetch(`${stack.url}/v1beta/models/gemini-3-flash-preview:generateContent`, {
    method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' }, body: JSON.stringify({ contents: [{ parts: [{ text: 'again' }] }] }),
  })
  t.equal(refused.status, 429)
  const retryAfter = Number(refused.headers.get('retry-after'))
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`)
  const body = await refused.json() as { error: { status: string, details: Array<Record<string, unknown>> } }
  t.equal(body.error.status, 'RESOURCE_EXHAUSTED')
  t.match(body.error.details, [
    { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaId: 'tokens_per_minute-per-person', quotaValue: '600' }] },
    { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${retryAfter}s` },
  ])

  stack.gemini.onNext(googleLike(20))
  const ai = new GoogleGenAI({ apiKey: holder.key, httpOptions: { baseUrl: stack.url, retryOptions: { attempts: 8, initialDelay: 0.5, maxDelay: 2 } } })
  const answer = await ai.models.generateContent({ model: 'gemini-3-flash-preview', contents: 'after the wait', config: { maxOutputTokens: 20 } })
  t.equal(answer.text, 'many words', 'the SDK, retrying, got through once the window refilled')
})

/** A 600-token minute, and one generateContent call with `body` to a fake that would serve 5,000 output tokens. */
async function outrunAttempt (t: Test, body: string) {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_minute: 600\n')
  const holder = await signInWithKey(stack)
  stack.gemini.onNext(googleLike(5_000))
  const response = await fetch(`${stack.url}/v1beta/models/gemini-3-flash-preview:generateContent`, {
    method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' }, body,
  })
  t.equal(response.status, 200)
  await response.text()
  // Settled once the day's usage shows the call (its correction is written by the same script).
  const settled = await eventually(async () => await me(holder.browser), (view) => view.policy.today.byModel['gemini-3-flash-preview']?.requests === 1)
  t.ok(settled.limits[0]!.used <= 600, `the person ended within the budget (${settled.limits[0]!.used} of 600 tokens)`)
  const forwarded = stack.gemini.requests.at(-1)!
  return { response, raw: forwarded.rawBody.toString('utf8'), forwarded: forwarded.body as Record<string, unknown> }
}

t.test('budget outrun by spelling: an output cap named by its proto name (generation_config.max_output_tokens) is lowered like generationConfig.maxOutputTokens', async (t) => {
  const { response, forwarded } = await outrunAttempt(t, JSON.stringify({ contents: [{ parts: [{ text: 'hello' }] }], generation_config: { max_output_tokens: 5_000, temperature: 0.5 } }))
  const granted = Number(response.headers.get('x-gemgate-max-output-tokens'))
  t.ok(granted >= 32 && granted < 600, `lowered to ${granted}`)
  t.same(forwarded.generationConfig, { temperature: 0.5, maxOutputTokens: granted }, 'one output cap, the lowered one, and the rest of the config kept')
  t.equal(forwarded.generation_config, undefined, 'no second spelling left for Google to pick')
})

t.test('budget outrun by a duplicate key: a body naming its output cap twice is forwarded as the gateway read it, with one cap', async (t) => {
  // JSON.parse keeps the last of two keys; another parser may keep the first.
  const { response, raw, forwarded } = await outrunAttempt(t, '{"contents":[{"parts":[{"text":"hello"}]}],"generationConfig":{"maxOutputTokens":5000,"temperature":0.5,"maxOutputTokens":100}}')
  t.equal(response.headers.get('x-gemgate-max-output-tokens'), null, 'the cap read (100) fits: not lowered')
  t.equal(raw.match(/maxOutputTokens/g)?.length, 1, `Google was sent one cap: ${raw}`)
  t.same(forwarded.generationConfig, { temperature: 0.5, maxOutputTokens: 100 })
})

t.test('a body that is not JSON, whose output cap the budget would lower, is refused as a bad request before Google is asked', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_minute: 600\n')
  const holder = await signInWithKey(stack)
  const response = await fetch(`${stack.url}/v1beta/models/gemini-3-flash-preview:generateContent`, {
    method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' }, body: 'contents: hello',
  })
  t.equal(response.status, 400)
  t.match(await response.json(), { error: { status: 'INVALID_ARGUMENT', message: /not a JSON object/ } })
  t.equal(stack.gemini.requests.length, 0)
})

t.test('budget outrun by compression: a gzip body is read for its estimate and forwarded as plain JSON, so its output cap can be lowered', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_minute: 600\n')
  const holder = await signInWithKey(stack)
  for (const [encoding, compress] of [['gzip', gzipSync], ['br', brotliCompressSync], ['deflate', deflateSync]] as const) {
    stack.gemini.onNext(googleLike(5_000))
    const response = await fetch(`${stack.url}/v1beta/models/gemini-3-flash-preview:generateContent`, {
      method: 'POST',
      headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json', 'content-encoding': encoding },
      body: compress(Buffer.from(JSON.stringify({ contents: [{ parts: [{ text: 'hello' }] }], generationConfig: { maxOutputTokens: 5_000 } }))),
    })
    t.equal(response.status, 200, `${encoding}: admitted`)
    await response.text()
    const granted = Number(response.headers.get('x-gemgate-max-output-tokens'))
    t.ok(granted >= 32 && granted < 600, `lowered to ${granted}`)
    const forwarded = stack.gemini.requests.at(-1)!
    t.equal(forwarded.headers['content-encoding'], undefined, 'forwarded uncompressed')
    t.match(forwarded.body, { generationConfig: { maxOutputTokens: granted } })
    // The next window: each call here spends its minute.
    await eventually(async () => await me(holder.browser), (view) => view.policy.today.byModel['gemini-3-flash-preview']?.requests !== undefined)
    await stack.redis!.client().eval("for _, key in ipairs(redis.call('keys', 'gemgate:policy:*:tpm')) do redis.call('del', key) end return 0", 0)
  }
})

t.test('budget outrun by candidates: candidateCount answers that many times the output cap, and is reserved so', async (t) => {
  const { response, forwarded } = await outrunAttempt(t, JSON.stringify({ contents: [{ parts: [{ text: 'hello' }] }], generationConfig: { maxOutputTokens: 500, candidateCount: 4 } }))
  const granted = Number(response.headers.get('x-gemgate-max-output-tokens'))
  t.ok(granted >= 32 && granted <= 150, `four answers of at most ${granted} tokens each`)
  t.same(forwarded.generationConfig, { maxOutputTokens: granted, candidateCount: 4 })
})

t.test('budget outrun by candidates named twice: the count reserved for is the one forwarded', async (t) => {
  const { forwarded } = await outrunAttempt(t, '{"contents":[{"parts":[{"text":"hello"}]}],"generation_config":{"max_output_tokens":500,"candidate_count":4,"candidate_count":1}}')
  t.same(forwarded.generationConfig, { maxOutputTokens: 500, candidateCount: 1 })
})

t.test('a compressed body that does not decompress is refused before Google: its size says nothing of its prompt', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_minute: 600\n')
  const holder = await signInWithKey(stack)
  const response = await fetch(`${stack.url}/v1beta/models/gemini-3-flash-preview:generateContent`, {
    method: 'POST',
    headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json', 'content-encoding': 'gzip' },
    body: Buffer.from('not gzip at all'),
  })
  t.equal(response.status, 400, 'a body the gateway cannot read is not forwarded under a token limit')
  t.equal(stack.gemini.requests.length, 0)
})

t.test('an image is reserved as an image (as Google counts it: 258 tokens), whichever spelling names it, not as its base64 text', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_minute: 2000\n')
  const holder = await signInWithKey(stack)
  // 30,000 bytes of base64 would be 10,000 tokens as text: over the limit five times.
  const image = { mime_type: 'image/png', data: 'A'.repeat(30_000) }
  for (const part of [{ inlineData: image }, { inline_data: image }, { file_data: { file_uri: `https://example.com/${'f'.repeat(30_000)}` } }]) {
    // The fake counts the prompt (countTokens) and answers the call.
    const response = await fetch(`${stack.url}/v1beta/models/gemini-3-flash-preview:generateContent`, {
      method: 'POST',
      headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' },
      body: JSON.stringify({ contents: [{ parts: [{ text: 'what is this?' }, part] }], generationConfig: { maxOutputTokens: 100 } }),
    })
    t.equal(response.status, 200, `${Object.keys(part)[0]!}: admitted`)
    t.equal(response.headers.get('x-gemgate-max-output-tokens'), null, 'and not lowered')
    await response.text()
  }
})

t.test('an embedContent prompt (content, singular) is reserved by its text, so a per-minute token limit holds ahead of the call', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_minute: 1000\n')
  const holder = await signInWithKey(stack)
  const response = await fetch(`${stack.url}/v1beta/models/gemini-embedding-001:embedContent`, {
    method: 'POST',
    headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' },
    body: JSON.stringify({ content: { parts: [{ text: 'a'.repeat(6_000) }] } }),
  })
  t.equal(response.status, 429, 'an estimated 2,000-token prompt does not fit a 1,000-token minute')
  t.equal(stack.gemini.requests.length, 0, 'and Google was never asked')
})

t.test('budget escape by hiding the usage: a 2xx answer whose usageMetadata the gateway cannot read (a field mask, alt=proto) is charged its whole reservation', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 100000\n')
  const holder = await signInWithKey(stack)
  const hidden: Array<[string, RequestHandler]> = [
    // What Google answers to ?fields=candidates (or X-Goog-FieldMask): no usageMetadata.
    ['fields=candidates', (_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ candidates: [{ content: { parts: [{ text: 'free?' }] } }] })) }],
    // And to alt=proto: a binary answer the gateway does not read.
    ['alt=proto', (_req, res) => { res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end(Buffer.from([0x0a, 0x03, 0x66, 0x6f, 0x78])) }],
  ]
  let before = 0
  for (const [query, handler] of hidden) {
    stack.gemini.onNext(handler)
    const response = await fetch(`${stack.url}/v1beta/models/gemini-3-flash-preview:generateContent?${query}`, {
      method: 'POST',
      headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' },
      body: JSON.stringify({ contents: [{ parts: [{ text: 'hello' }] }], generationConfig: { maxOutputTokens: 1_000 } }),
    })
    t.equal(response.status, 200)
    await response.arrayBuffer()
    // The reservation (about 1,002 tokens) stands, and the day's usage shows the call.
    const view = await eventually(async () => await me(holder.browser), (value) => (value.policy.today.byModel['gemini-3-flash-preview']?.requests ?? 0) > before)
    before++
    t.ok(view.limits[0]!.used >= 1_000 * before, `${query}: charged as reserved (${view.limits[0]!.used} tokens used)`)
  }
})

t.test('usage hidden by a field mask: fields, $fields and X-Goog-FieldMask are not forwarded, so Google reports the whole usage', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 100000\n')
  const holder = await signInWithKey(stack)
  for (const query of ['fields=candidates,usageMetadata.promptTokenCount', '%24fields=candidates', 'alt=sse&fields=candidates']) {
    stack.gemini.onNext(googleLike(10))
    const response = await fetch(`${stack.url}/v1beta/models/gemini-3-flash-preview:generateContent?${query}`, {
      method: 'POST',
      headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json', 'x-goog-fieldmask': 'candidates' },
      body: JSON.stringify({ contents: [{ parts: [{ text: 'hello' }] }], generationConfig: { maxOutputTokens: 100 } }),
    })
    t.equal(response.status, 200)
    await response.text()
    const forwarded = stack.gemini.requests.at(-1)!
    t.same(Object.keys(forwarded.query).filter((name) => name.replace(/^\$/, '') === 'fields'), [], `${query}: no field mask in the query`)
    t.equal(forwarded.headers['x-goog-fieldmask'], undefined, 'nor in a header')
  }
})

t.test('cost comes from the modelVersion Google reports, at the price row in force', async (t) => {
  const prices = `prices:
  gemini-test-model:
    - { from: '2020-01-01', input: 1, output: 2, cached_input: 0.5 }
    - { from: '2999-01-01', input: 100, output: 200 }
policy:
  - default: true
    usd_per_day: 1
`
  const stack = await startPolicyStack(t, prices)
  const holder = await signInWithKey(stack)
  stack.gemini.onNext(googleLike(500, { modelVersion: 'gemini-test-model-001', usage: { promptTokenCount: 1_000, candidatesTokenCount: 500, totalTokenCount: 1_750 } }))
  const ai = new GoogleGenAI({ apiKey: holder.key, httpOptions: { baseUrl: stack.url } })
  await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'price me' })
  const view = await eventually(async () => await me(holder.browser), (value) => value.policy.today.usd > 0)
  // 1,000 prompt tokens at $1/1M, 500 output + 250 thinking tokens at $2/1M; the 2999 row is not in force.
  t.equal(view.policy.today.usd, 0.0025)
  t.match(view.policy.today.byModel['gemini-test-model-001'], { requests: 1, prompt: 1_000, output: 500, thinking: 250, usd: 0.0025 })
  t.equal(view.policy.today.byModel['gemini-2.5-flash'], undefined, 'not charged to the model asked for')
  t.match(view.limits, [{ name: 'usd_per_day', limit: 1, used: 0.0025, remaining: 0.9975 }])
  const day = new Date().toISOString().slice(0, 10)
  const kept = await stack.redis!.client().pttl(`gemgate:policy:{${holder.personId}}:usage:${day}`)
  t.ok(kept >= 400 * 86_400_000, 'usage per person, model and day is kept at least 400 days')
  const page = await (await holder.browser.fetch('/auth/status')).text()
  t.match(page, /<section class="card" id="limits"><h2>Your limits<\/h2>/, 'the status page has the section')
  t.match(page, /usd per day<\/td><td>\$1\.00<\/td><td>\$0\.0025<\/td><td>\$0\.9975<\/td>/, 'limit, used, left')
  t.match(page, /<dt>Cost today<\/dt><dd>\$0\.0025<\/dd>/)
  t.match(page, /<code>gemini-test-model-001<\/code><\/td><td>1<\/td><td>1000<\/td><td>0<\/td><td>500<\/td><td>250<\/td>/, 'per-model usage this month')
  const metrics = await (await fetch(`${stack.url}/metrics`)).text()
  t.match(metrics, /gemgate_policy_cost_usd_total\{rule="default",model="gemini-test-model"\} 0\.0025/)
  t.notMatch(metrics, new RegExp(holder.personId), 'never a person in a metric')
})

t.test('a stream the client abandons is read to its end and settled with the usage Google reported, not with its reservation', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 100000\n', { gemini: { chunkCount: 4, chunkDelayMs: 400 } })
  const holder = await signInWithKey(stack)
  const abort = new AbortController()
  const stream = await fetch(`${stack.url}/v1beta/models/gemini-3-flash-preview:streamGenerateContent?alt=sse`, {
    method: 'POST',
    signal: abort.signal,
    headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' },
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'one two three four' }] }], generationConfig: { maxOutputTokens: 5_000 } }),
  })
  const reader = stream.body!.getReader()
  await reader.read()
  const reserved = (await me(holder.browser)).limits[0]!.used
  t.ok(reserved > 5_000, `while it streams, the reservation counts (${reserved})`)
  abort.abort()
  // Google bills the whole answer whoever reads it (test/security-policy-hang-up.test.ts): the gateway reads it to its last chunk's usage.
  const view = await eventually(async () => await me(holder.browser), (value) => value.limits[0]!.used < 1_000)
  t.equal(view.limits[0]!.used, stack.gemini.requests[0]!.billedTokens, 'charged the usage Google reported, and the rest of the 5,000 output tokens given back')
  t.equal(stack.gemini.aborted, 0, 'the upstream call was not cancelled')
})

/** Calls generateContent with `text` sent in chunks of `chunk`, with no Content-Length (Transfer-Encoding: chunked). */
async function postChunked (url: string, key: string, text: string, chunk = 64 * 1024): Promise<Response> {
  const bytes = Buffer.from(text)
  let at = 0
  const body = new ReadableStream<Uint8Array>({
    pull (controller) {
      if (at >= bytes.length) {
        controller.close()
        return
      }
      controller.enqueue(bytes.subarray(at, at += chunk))
    },
  })
  return await fetch(`${url}/v1beta/models/gemini-3-flash-preview:generateContent`, {
    method: 'POST',
    headers: { 'x-goog-api-key': key, 'content-type': 'application/json' },
    body,
    duplex: 'half',
  } as RequestInit)
}

t.test('budget outrun by a chunked body: a prompt too large to keep, sent without a Content-Length, is read for its estimate, not reserved as nothing', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_minute: 450000\n')
  const holder = await signInWithKey(stack)
  // 1.5 MB of text (above the 1 MiB a body is kept up to): about 500,000 tokens, over the minute's 450,000.
  const response = await postChunked(stack.url, holder.key, JSON.stringify({ contents: [{ parts: [{ text: 'fox '.repeat(375_000) }] }] }))
  t.equal(response.status, 429, 'refused before Google generates: it cannot fit')
  // A prompt this long is counted by Google first (countTokens: free); the estimate stands where it is higher.
  t.same(stack.gemini.requests.map((request) => request.path.replace(/^.*:/, '')), ['countTokens'])

  // One that fits (1.08 MB, still above what is kept) is forwarded whole, as sent.
  stack.gemini.onNext((_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ totalTokens: 270_000 })) })
  stack.gemini.onNext(googleLike(10))
  const small = JSON.stringify({ contents: [{ parts: [{ text: 'fox '.repeat(270_000) }] }], generationConfig: { maxOutputTokens: 100 } })
  const admitted = await postChunked(stack.url, holder.key, small)
  t.equal(admitted.status, 200)
  await admitted.text()
  t.equal(stack.gemini.requests.length, 3)
  t.equal(stack.gemini.requests[2]!.rawBody.length, Buffer.byteLength(small), 'the whole body reached Google')
})

t.test('a chunked body over Google\'s 20 MB request limit is refused (400) under a token limit, before Google', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 100000000\n')
  const holder = await signInWithKey(stack)
  const response = await postChunked(stack.url, holder.key, `{"contents":[{"parts":[{"text":"${'a'.repeat(21 * 1024 * 1024)}"}]}]}`, 1024 * 1024)
  t.equal(response.status, 400)
  t.match(await response.json(), { error: { status: 'INVALID_ARGUMENT', message: /20 MB/ } })
  t.equal(stack.gemini.requests.length, 0)
})

t.test('budget outrun by a context cache: a call naming cachedContent reserves the cache\'s tokens (Google counts them in the prompt), read from Google', async (t) => {
  const { stack, key, cache } = await contextCacheStack(t, 'gemini-3-flash-preview')
  const post = async (path: string, body: Record<string, unknown>): Promise<Response> => await fetch(`${stack.url}${path}`, {
    method: 'POST', headers: { 'x-goog-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify(body),
  })
  const large = await cache(60_000)
  const generations = (): number => stack.gemini.requests.filter((request) => request.path.endsWith(':generateContent')).length

  for (const field of ['cachedContent', 'cached_content']) {
    const refused = await post('/v1beta/models/gemini-3-flash-preview:generateContent', { [field]: large, contents: [{ parts: [{ text: 'summarise' }] }], generationConfig: { maxOutputTokens: 100 } })
    t.equal(refused.status, 429, `${field}: the cache's tokens do not fit the minute`)
    t.equal(generations(), 0, 'Google was not asked to generate')
  }

  const small = await cache(500)
  stack.gemini.onNext(googleLike(10, { usage: { promptTokenCount: 510, cachedContentTokenCount: 500, candidatesTokenCount: 10, totalTokenCount: 520 } }))
  const admitted = await post('/v1beta/models/gemini-3-flash-preview:generateContent', { cachedContent: small, contents: [{ parts: [{ text: 'summarise' }] }], generationConfig: { maxOutputTokens: 100 } })
  t.equal(admitted.status, 200, 'a cache that fits is admitted')
  t.ok(Number(admitted.headers.get('x-ratelimit-remaining-tokens')) <= 20000 - 500 - 100, 'with its tokens reserved')
  await admitted.text()

  const bad = await post('/v1beta/models/gemini-3-flash-preview:generateContent', { cachedContent: '../models/x', contents: [] })
  t.equal(bad.status, 400, 'a cachedContent that names no cache is refused')

  // Making a cache is billed for its tokens when it is made: unpriced, like :predict, under a token limit.
  const made = await post('/v1beta/cachedContents', { model: 'models/gemini-3-flash-preview', contents: [{ parts: [{ text: 'word '.repeat(10) }] }] })
  t.equal(made.status, 403)
  t.match(await made.json(), { error: { status: 'PERMISSION_DENIED', message: /cachedContents calls/ } })

  // A cache whose size Google does not give (an error, here) is not sent unreserved.
  stack.gemini.onNext((_req, res) => { res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"code":500,"status":"INTERNAL"}}') })
  const before = generations()
  const unread = await post('/v1beta/models/gemini-3-flash-preview:generateContent', { cachedContent: 'cachedContents/not-read-yet', contents: [{ parts: [{ text: 'summarise' }] }] })
  t.equal(unread.status, 503)
  t.match(await unread.json(), { error: { status: 'UNAVAILABLE', message: /could not be read/ } })
  t.equal(generations(), before, 'Google was not asked to generate')
})
