import { gzipSync } from 'node:zlib'
import OpenAI from 'openai'
import t from 'tap'
import { signInWithKey } from './helpers/person.js'
import { contextCacheStack, eventually, startPolicyStack } from './helpers/policy.js'

// Issue 14: the OpenAI-compatible surface is held to the policy like generateContent: checked and
// reserved before it goes upstream, its output cap lowered to what the budget pays for, settled
// with the usage Google reports.

const MODEL = 'gemini-3.8-flash'

interface Me { limits: Array<{ name: string, used: number }> }

t.test('requests_per_minute is enforced before the call goes upstream, for chat completions and embeddings', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    requests_per_minute: 2\n')
  const holder = await signInWithKey(stack)
  const client = new OpenAI({ apiKey: holder.key, baseURL: `${stack.url}/v1beta/openai/`, maxRetries: 0 })
  const upstreamCalls = (): number => stack.gemini.requests.filter((request) => request.path.startsWith('/v1beta/openai/')).length

  const { response } = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'one' }] }).withResponse()
  t.equal(response.headers.get('x-ratelimit-limit-requests'), '2', 'the limit in the headers OpenAI clients read')
  t.equal(response.headers.get('x-ratelimit-remaining-requests'), '1')
  await client.embeddings.create({ model: 'gemini-embedding-001', input: 'two' })
  const failed = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'three' }] })
    .then(() => undefined, (error: unknown) => error as InstanceType<typeof OpenAI.APIError>)
  t.equal(failed?.status, 429, 'the third call of the minute is refused')
  t.match(failed?.message, /requests per minute/, 'the openai package reports which limit')
  t.ok(Number(failed?.headers?.get('retry-after')) >= 1, 'with Retry-After, which the openai package honours when it retries')
  t.equal(upstreamCalls(), 2, 'the refused call never reached Google')
})

t.test('max_tokens and max_completion_tokens are lowered to what the budget pays for, and settled with the usage reported', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 600\n', { gemini: { chunkDelayMs: 5 } })
  const holder = await signInWithKey(stack)
  const client = new OpenAI({ apiKey: holder.key, baseURL: `${stack.url}/v1beta/openai/`, maxRetries: 0 })
  const used = async (): Promise<number> => ((await (await holder.browser.fetch('/auth/me')).json()) as Me).limits[0]!.used
  const forwarded = (): Record<string, unknown> => stack.gemini.requests.at(-1)!.body as Record<string, unknown>

  const { data, response } = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hello budget' }], max_tokens: 1_000 }).withResponse()
  t.equal(data.choices[0]?.message.content, 'Echo: hello budget')
  const granted = Number(response.headers.get('x-gemgate-max-output-tokens'))
  t.ok(granted >= 32 && granted < 600, `max_tokens lowered to ${granted}, and said so`)
  t.equal(forwarded().max_tokens, granted, 'Google was asked for no more than the budget pays for')
  // The fake reports 2 prompt and 3 completion tokens: the reservation is settled to them.
  t.equal(await eventually(used, (value) => value === 5), 5, 'settled with the usage Google reported')

  const { data: stream, response: streamed } = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'stream budget' }], max_completion_tokens: 1_000, stream: true,
  }).withResponse()
  let text = ''
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
  t.equal(text, 'Echo: stream budget')
  const lowered = Number(streamed.headers.get('x-gemgate-max-output-tokens'))
  t.ok(lowered >= 32 && lowered < 595, `max_completion_tokens lowered to ${lowered}`)
  t.match(forwarded(), { max_completion_tokens: lowered, stream_options: { include_usage: true } })
  t.equal(forwarded().max_tokens, undefined, 'only the cap the client named')
  t.equal(await eventually(used, (value) => value === 10), 10, 'a stream is settled with its usage chunk, which the client did not see')

  // Budget outrun by naming two caps: the gateway reserves for the one it reads, so Google must not be left the other.
  const { response: both } = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'two caps' }], max_completion_tokens: 40, max_tokens: 5_000 }).withResponse()
  t.equal(both.headers.get('x-gemgate-max-output-tokens'), null, 'the cap read fits: not lowered')
  t.match(forwarded(), { max_completion_tokens: 40, max_tokens: 40 }, 'both caps forwarded as the one reserved for')

  // Budget outrun by choices: n answers, each up to the cap, are reserved as n times the cap.
  const { response: choices } = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'three' }], max_tokens: 300, n: 3 }).withResponse()
  const each = Number(choices.headers.get('x-gemgate-max-output-tokens'))
  t.ok(each >= 32 && each <= 200, `three choices of at most ${each} tokens each fit what is left of 600`)
  t.match(forwarded(), { max_tokens: each, n: 3 })
})

t.test('a chat completion whose model cannot be read (a compressed body) is refused, not forwarded unreserved', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    requests_per_minute: 1\n')
  const holder = await signInWithKey(stack)
  const send = async (): Promise<Response> => await fetch(`${stack.url}/v1beta/openai/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${holder.key}`, 'content-type': 'application/json', 'content-encoding': 'gzip' },
    body: gzipSync(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hidden' }] })),
  })
  for (const attempt of [1, 2]) {
    const response = await send()
    t.equal(response.status, 400, `attempt ${attempt}: refused`)
    t.match(await response.text(), /uncompressed JSON/)
  }
  t.equal(stack.gemini.requests.length, 0, 'nothing reached Google')
})

t.test('a stream the client abandons is read to its end and charged what Google reported, its unused output reservation given back', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 100000\n', { gemini: { chunkDelayMs: 400 } })
  const holder = await signInWithKey(stack)
  const client = new OpenAI({ apiKey: holder.key, baseURL: `${stack.url}/v1beta/openai/`, maxRetries: 0 })
  const used = async (): Promise<number> => ((await (await holder.browser.fetch('/auth/me')).json()) as Me).limits[0]!.used
  const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'one two three four' }], max_tokens: 5_000, stream: true })
  for await (const _chunk of stream) {
    const reserved = await used()
    t.ok(reserved > 5_000, `while it streams, the reservation counts (${reserved})`)
    break
  }
  // Google bills the whole answer whoever reads it (test/security-policy-hang-up.test.ts): the gateway reads it for its usage chunk.
  const charged = await eventually(used, (value) => value < 1_000)
  t.equal(charged, stack.gemini.requests[0]!.billedTokens, 'charged the usage Google reported, the rest of the 5,000 output tokens given back')
  t.equal(stack.gemini.aborted, 0, 'the upstream call was not cancelled')
})

t.test('budget escape by an unpriced OpenAI call: images/generations is refused under a dollar limit, counted under a request rate; models stay free', async (t) => {
  const generateImage = async (url: string, key: string): Promise<Response> => await fetch(`${url}/v1beta/openai/images/generations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'imagen-3.0-generate-002', prompt: 'a fox', n: 1 }),
  })
  const budget = await startPolicyStack(t, 'policy:\n  - default: true\n    usd_per_day: 1\n')
  const spender = await signInWithKey(budget)
  const refused = await generateImage(budget.url, spender.key)
  t.equal(refused.status, 403)
  t.match(await refused.json(), { error: { status: 'PERMISSION_DENIED', message: /openai\/images\/generations calls/ } })
  t.equal(budget.gemini.requests.length, 0, 'Google was never asked')
  const models = await fetch(`${budget.url}/v1beta/openai/models`, { headers: { authorization: `Bearer ${spender.key}` } })
  t.equal(models.status, 200, 'listing models costs nothing and is not refused')

  const rate = await startPolicyStack(t, 'policy:\n  - default: true\n    requests_per_minute: 1\n')
  const caller = await signInWithKey(rate)
  rate.gemini.onNext((_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"created":0,"data":[]}') })
  t.equal((await generateImage(rate.url, caller.key)).status, 200)
  t.equal((await generateImage(rate.url, caller.key)).status, 429, 'the second image of a one-a-minute rule')
})

t.test('budget outrun by a context cache on the OpenAI-compatible surface: extra_body.google.cached_content reserves the cache\'s tokens', async (t) => {
  const { stack, key, cache } = await contextCacheStack(t, MODEL)
  const client = new OpenAI({ apiKey: key, baseURL: `${stack.url}/v1beta/openai/`, maxRetries: 0 })
  const failed = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'summarise' }], max_tokens: 100,
    // The shape Google's OpenAI-compatible endpoint documents for a context cache.
    extra_body: { google: { cached_content: await cache(60_000) } },
  } as OpenAI.ChatCompletionCreateParamsNonStreaming).then(() => undefined, (error: unknown) => error as InstanceType<typeof OpenAI.APIError>)
  t.equal(failed?.status, 429, 'the cache\'s tokens do not fit the minute')
  t.equal(stack.gemini.requests.filter((request) => request.path.startsWith('/v1beta/openai/')).length, 0, 'Google was not asked')
})

t.test('allow-list escape by the OpenAI-compatible models.list: it shows only the models the caller may use, like Gemini\'s own', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    models: [\'gemini-2.5-flash\']\n')
  const holder = await signInWithKey(stack)
  const client = new OpenAI({ apiKey: holder.key, baseURL: `${stack.url}/v1beta/openai/`, maxRetries: 0 })
  const ids: string[] = []
  for await (const model of await client.models.list()) ids.push(model.id)
  t.same(ids, ['models/gemini-2.5-flash'])
  const retrieved = await client.models.retrieve('gemini-3-pro-preview').then(() => undefined, (error: unknown) => error as InstanceType<typeof OpenAI.APIError>)
  t.equal(retrieved?.status, 403, 'and retrieving another is refused')
})
