import OpenAI from 'openai'
import t from 'tap'
import { modelUsage as usageOf, signInWithKey, startProxyStack } from './helpers/person.js'

const MODEL = 'gemini-3.8-flash'

t.test('the openai package: chat completion, its stream, embeddings and models through the gateway, metered per person', async (t) => {
  const stack = await startProxyStack(t, { gemini: { chunkDelayMs: 5 } })
  const holder = await signInWithKey(stack)
  const record = await stack.app.vault.load(holder.personId)
  const client = new OpenAI({ apiKey: holder.key, baseURL: `${stack.url}/v1beta/openai/` })

  const completion = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hello openai world' }] })
  t.equal(completion.choices[0]?.message.content, 'Echo: hello openai world')
  t.same(completion.usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 })

  const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = []
  for await (const chunk of await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'stream me' }], stream: true })) chunks.push(chunk)
  t.equal(chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join(''), 'Echo: stream me')
  t.ok(chunks.every((chunk) => chunk.choices.length > 0 && chunk.usage == null), 'the usage chunk the client did not ask for was taken out')
  const forwarded = stack.gemini.requests.at(-1)!.body as { stream_options?: { include_usage?: boolean } }
  t.equal(forwarded.stream_options?.include_usage, true, 'the gateway asked for usage upstream')

  const asked: OpenAI.Chat.Completions.ChatCompletionChunk[] = []
  for await (const chunk of await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'with usage' }], stream: true, stream_options: { include_usage: true } })) asked.push(chunk)
  t.same(asked.at(-1)?.usage, { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 }, 'a client that asked gets its usage chunk')

  const embeddings = await client.embeddings.create({ model: 'gemini-embedding-001', input: ['first text', 'second text'] })
  t.equal(embeddings.data.length, 2)
  const models = await client.models.list()
  t.ok(models.data.length > 0)

  const usage = await usageOf(holder.browser, MODEL, 3)
  t.equal(usage?.requests, 3, 'three chat calls counted')
  t.equal(usage?.prompt, 3 + 2 + 2)
  t.equal(usage?.candidates, 4 + 3 + 3)
  t.equal((await usageOf(holder.browser, 'gemini-embedding-001', 1))?.prompt, 4, 'embeddings counted')

  const openAiCalls = stack.gemini.requests.filter((request) => request.path.startsWith('/v1beta/openai/'))
  t.equal(openAiCalls.length, 5)
  t.ok(openAiCalls.every((request) => request.headers.authorization === `Bearer ${record!.accessToken}`), 'the person\'s token upstream')
  t.notOk(JSON.stringify(openAiCalls.map((request) => request.headers)).includes(holder.key), 'never the gateway key')
})

t.test('no key: 401 in a shape the openai package reports', async (t) => {
  const stack = await startProxyStack(t)
  const client = new OpenAI({ apiKey: 'not-a-gateway-key', baseURL: `${stack.url}/v1beta/openai/`, maxRetries: 0 })
  const failed = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }).then(() => undefined, (error: unknown) => error as { status?: number, message?: string })
  t.equal(failed?.status, 401)
  t.match(failed?.message, /gateway key/)
  t.equal(stack.gemini.requests.length, 0)
})

t.test('UPSTREAM_API_KEY for the openai surface: the key goes upstream, usage stays per person', async (t) => {
  const stack = await startProxyStack(t, { gemini: { validApiKeys: ['AIza-operator-key'] }, env: { UPSTREAM_API_KEY: 'AIza-operator-key', UPSTREAM_API_KEY_SURFACES: 'openai' } })
  const holder = await signInWithKey(stack)
  const client = new OpenAI({ apiKey: holder.key, baseURL: `${stack.url}/v1beta/openai/` })
  await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'operator billed' }] })
  const upstream = stack.gemini.requests.at(-1)!
  t.equal(upstream.apiKey, 'AIza-operator-key')
  t.equal(upstream.headers.authorization, undefined)
  t.equal((await usageOf(holder.browser, MODEL, 1))?.requests, 1)
})

t.test('a client that hangs up on a chat completion stream cancels the upstream call (no token or dollar limit)', async (t) => {
  const stack = await startProxyStack(t, { gemini: { chunkDelayMs: 300 } })
  const holder = await signInWithKey(stack)
  const client = new OpenAI({ apiKey: holder.key, baseURL: `${stack.url}/v1beta/openai/`, maxRetries: 0 })
  const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'one two three four five' }], stream: true })
  const aborted = stack.gemini.nextAbort()
  for await (const _chunk of stream) break
  t.ok((await aborted).aborted, 'Google\'s call was cancelled')
})
