import type { ServerResponse } from 'node:http'
import t from 'tap'
import { signInWithKey } from './helpers/person.js'
import { contextCacheStack, startPolicyStack } from './helpers/policy.js'

// Issue 14: "so a single call cannot run a person past their budget". A prompt's text can be
// estimated from its bytes, its media cannot: an hour of video is about a million tokens in a
// few megabytes, or in a file reference of a hundred bytes. Reserved as a fixed amount per part,
// a call with a video (or many at once, each asking for one output token) ran a budget over by
// the video's size. A call holding media is now reserved for what Google's countTokens (free)
// counts in it. The fake counts a non-image medium as a token per four base64 characters.

const MODEL = 'gemini-3-flash-preview'
const video = (tokens: number): Record<string, unknown> => ({ inlineData: { mimeType: 'video/mp4', data: 'A'.repeat(tokens * 4) } })
const body = (part: Record<string, unknown>, extra: Record<string, unknown> = {}): string => JSON.stringify({ contents: [{ parts: [{ text: 'describe this' }, part] }], generationConfig: { maxOutputTokens: 1 }, ...extra })

async function post (url: string, key: string, json: string): Promise<Response> {
  return await fetch(`${url}/v1beta/models/${MODEL}:generateContent`, { method: 'POST', headers: { 'x-goog-api-key': key, 'content-type': 'application/json' }, body: json })
}

/** The methods Google was asked for, in order (`countTokens`, `generateContent`). */
const methodsAsked = (stack: { gemini: { requests: Array<{ path: string }> } }): string[] => stack.gemini.requests.map((request) => request.path.replace(/^.*:/, ''))

const answer = (status: number, json: unknown) => (_req: unknown, res: ServerResponse) => {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(json))
}

t.test('budget outrun by media: a call holding more video than the budget has left is refused before Google generates anything', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_minute: 100000\n')
  const holder = await signInWithKey(stack)
  const refused = await post(stack.url, holder.key, body(video(200_000)))
  t.equal(refused.status, 429, 'a 200,000-token video does not fit a 100,000-token minute')
  t.same(stack.gemini.requests.map((request) => request.path), [`/v1beta/models/${MODEL}:countTokens`], 'Google only counted it')
  t.match(stack.gemini.requests[0]!.body, { generateContentRequest: { model: `models/${MODEL}`, contents: [{ parts: [{ text: 'describe this' }, { inlineData: { mimeType: 'video/mp4' } }] }] } })

  // One that fits is reserved for what Google counted, not for 258 tokens.
  const admitted = await post(stack.url, holder.key, body(video(30_000)))
  t.equal(admitted.status, 200)
  await admitted.text()
  const remaining = Number(admitted.headers.get('x-ratelimit-remaining-tokens'))
  t.ok(remaining <= 100_000 - 30_000, `the reservation held the video's 30,000 tokens (${remaining} left)`)
  t.equal(stack.gemini.requests.at(-1)!.path, `/v1beta/models/${MODEL}:generateContent`)
})

t.test('budget outrun by media in parallel: calls asking for one output token each cannot together spend past the budget', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 100000\n')
  const holder = await signInWithKey(stack)
  const answers = await Promise.all(Array.from({ length: 8 }, async () => await post(stack.url, holder.key, body(video(30_000)))))
  const admitted = answers.filter((response) => response.status === 200).length
  await Promise.all(answers.map(async (response) => await response.text()))
  t.ok(admitted <= 3, `at most three 30,000-token videos in a 100,000-token day (${admitted} admitted)`)
  t.equal(answers.filter((response) => response.status === 429).length, 8 - admitted, 'the rest over the budget')
})

t.test('a context cache and media together: the media counted by Google without the cache, the cache\'s own size added', async (t) => {
  // A cache made through the gateway, without tools (its owner has no limits; everyone else a 20,000-token minute).
  const { stack, key, cache } = await contextCacheStack(t, MODEL)
  const name = await cache(10)
  // The count and the cache's size are asked for at once: each answered by what it asks.
  const google = (req: unknown, res: ServerResponse, request: { path: string }): void => {
    if (request.path.endsWith(':countTokens')) answer(200, { totalTokens: 8_000 })(req, res)
    else if (request.path.endsWith(`/${name}`)) answer(200, { name, usageMetadata: { totalTokenCount: 5_000 } })(req, res)
    else answer(200, { candidates: [], usageMetadata: { promptTokenCount: 13_000, totalTokenCount: 13_000 } })(req, res)
  }
  for (let i = 0; i < 3; i++) stack.gemini.onNext(google)
  const response = await post(stack.url, key, body(video(8_000), { cachedContent: name }))
  t.equal(response.status, 200)
  await response.text()
  const counted = stack.gemini.requests.find((request) => request.path.endsWith(':countTokens'))
  t.ok(counted !== undefined, 'the media was counted')
  t.notMatch(counted?.body, { generateContentRequest: { cachedContent: String } }, 'the cache is not counted twice')
  t.ok(Number(response.headers.get('x-ratelimit-remaining-tokens')) <= 7_000, 'media and cache both reserved')
})

t.test('when Google cannot count a call\'s media, the call is not sent unreserved', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    usd_per_day: 5\n')
  const holder = await signInWithKey(stack)
  stack.gemini.onNext(answer(500, { error: { code: 500, message: 'internal', status: 'INTERNAL' } }))
  const unavailable = await post(stack.url, holder.key, body(video(10)))
  t.equal(unavailable.status, 503)
  t.match(await unavailable.json(), { error: { status: 'UNAVAILABLE', message: /count/ } })
  stack.gemini.onNext(answer(400, { error: { code: 400, message: 'Unsupported MIME type: video/x-nothing', status: 'INVALID_ARGUMENT' } }))
  const invalid = await post(stack.url, holder.key, body(video(10)))
  t.equal(invalid.status, 400, 'what Google refuses to count it would refuse to answer')
  t.match(await invalid.json(), { error: { status: 'INVALID_ARGUMENT', message: /Unsupported MIME type: video\/x-nothing/ } })
  stack.gemini.onNext(answer(200, { totalTokens: 'many' }))
  t.equal((await post(stack.url, holder.key, body(video(10)))).status, 503, 'an answer without a count is no count')
  t.same(methodsAsked(stack), ['countTokens', 'countTokens', 'countTokens'], 'nothing was generated')
})

t.test('without a token or dollar limit, media is not counted ahead: no extra call to Google', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    requests_per_minute: 100\n')
  const holder = await signInWithKey(stack)
  const response = await post(stack.url, holder.key, body(video(10)))
  t.equal(response.status, 200)
  await response.text()
  t.same(methodsAsked(stack), ['generateContent'])
})

t.test('budget outrun by media on the OpenAI-compatible surface: audio and data-URL images are counted by Google like Gemini\'s own', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_minute: 100000\n')
  const holder = await signInWithKey(stack)
  const chat = async (content: unknown[]): Promise<Response> => await fetch(`${stack.url}/v1beta/openai/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${holder.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, max_tokens: 1, messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content }] }),
  })
  const audio = await chat([{ type: 'text', text: 'transcribe' }, { type: 'input_audio', input_audio: { format: 'wav', data: 'A'.repeat(800_000) } }])
  t.equal(audio.status, 429, 'a 200,000-token recording does not fit a 100,000-token minute')
  const clip = await chat([{ type: 'image_url', image_url: { url: `data:video/mp4;base64,${'A'.repeat(800_000)}` } }])
  t.equal(clip.status, 429, 'nor a video in a data URL')
  t.same(stack.gemini.requests.map((request) => request.path), [`/v1beta/models/${MODEL}:countTokens`, `/v1beta/models/${MODEL}:countTokens`], 'Google only counted them')
  t.match(stack.gemini.requests[0]!.body, {
    generateContentRequest: {
      model: `models/${MODEL}`,
      contents: [{ role: 'user', parts: [{ text: 'be brief' }] }, { role: 'user', parts: [{ text: 'transcribe' }, { inlineData: { mimeType: 'audio/wav' } }] }],
    },
  })
  t.match(stack.gemini.requests[1]!.body, { generateContentRequest: { contents: [{}, { parts: [{ inlineData: { mimeType: 'video/mp4' } }] }] } })
})

t.test('budget outrun by media in a body too large to keep: it is read whole, so a file reference in it is counted too', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_minute: 100000\n', { env: { RETRY_BODY_LIMIT_BYTES: '1024' } })
  const holder = await signInWithKey(stack)
  // Google counts an hour of video behind the link at about a million tokens.
  stack.gemini.onNext(answer(200, { totalTokens: 1_000_000 }))
  const padded = body({ fileData: { fileUri: 'https://www.youtube.com/watch?v=an-hour-long' } }, { systemInstruction: { parts: [{ text: 'be brief. '.repeat(300) }] } })
  t.ok(Buffer.byteLength(padded) > 1024, 'above what is kept for a retry')
  const response = await post(stack.url, holder.key, padded)
  t.equal(response.status, 429, 'reserved for the video, not for the body\'s size')
  t.same(methodsAsked(stack), ['countTokens'])
})

t.test('Google failing while the policy asks it (a media count, a cache\'s size, the models list): a reset is 502, an answer that never comes is 504, in Google\'s shape, and nothing is generated', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_minute: 100000\n', { env: { UPSTREAM_TIMEOUT_SECONDS: '1' } })
  const holder = await signInWithKey(stack)
  const counting = { match: (request: { path: string }) => request.path.endsWith(':countTokens') }
  stack.gemini.fault({ kind: 'reset' }, counting)
  const reset = await post(stack.url, holder.key, body(video(10)))
  t.equal(reset.status, 502)
  t.match(await reset.json(), { error: { code: 502, message: /could not be reached \(request id / } })
  stack.gemini.fault({ kind: 'hang' }, counting)
  const hung = await post(stack.url, holder.key, body(video(10)))
  t.equal(hung.status, 504)
  t.match(await hung.json(), { error: { code: 504, message: /did not answer in time/ } })
  // A context cache's size, read the same way.
  stack.gemini.fault({ kind: 'reset' }, { match: (request) => request.path.includes('/cachedContents/') })
  const cache = await post(stack.url, holder.key, JSON.stringify({ cachedContent: 'cachedContents/c-9', contents: [{ parts: [{ text: 'hi' }] }] }))
  t.equal(cache.status, 502)
  t.notOk(stack.gemini.requests.some((request) => request.path.endsWith(':generateContent')), 'nothing was generated')
  // And the models list the policy filters, asked for the same way.
  stack.gemini.fault({ kind: 'reset' }, { match: (request) => request.path === '/v1beta/models' })
  const list = await fetch(`${stack.url}/v1beta/models`, { headers: { 'x-goog-api-key': holder.key } })
  t.equal(list.status, 502)
  t.match(await list.json(), { error: { code: 502 } })
})

t.test('a caller out of requests is refused before Google is asked to count their media', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    requests_per_minute: 1\n    tokens_per_minute: 100000\n')
  const holder = await signInWithKey(stack)
  const first = await post(stack.url, holder.key, body(video(10)))
  t.equal(first.status, 200)
  await first.text()
  for (let i = 0; i < 3; i++) {
    const refused = await post(stack.url, holder.key, body(video(10)))
    t.equal(refused.status, 429, 'over the minute\'s one request')
    t.match(await refused.json(), { error: { status: 'RESOURCE_EXHAUSTED', details: [{ violations: [{ quotaId: 'requests_per_minute-per-person' }] }, { retryDelay: /^\d+s$/ }] } })
    t.match(refused.headers.get('retry-after'), /^\d+$/)
  }
  t.same(methodsAsked(stack), ['countTokens', 'generateContent'], 'no count for the refused calls')
})
