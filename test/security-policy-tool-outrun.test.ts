import type { ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { signInWithKey } from './helpers/person.js'
import { startPolicyStack } from './helpers/policy.js'
import { serverTools } from '../src/policy/request-body.js'

// Issue 14: "so a single call cannot run a person past their budget". A call's tools that run at
// Google (URL context, code execution, file search, search grounding) bring input of their own:
// every page URL context fetches is billed as prompt tokens (Google reports them as
// toolUsePromptTokenCount), up to 20 pages of 34 MB each, none of it in the body the gateway
// reads. Reserved as the body's text, one call, or many at once each asking for one output token,
// ran a budget over by whatever the pages held. The model cannot read more than its input limit
// in one call, so such a call is reserved for that. The fake's URL context fetches each URL in the
// prompt as a page of the tokens its URL names (`…/tokens/N`).

const MODEL = 'gemini-3-flash-preview'
/** The fake's input limit for every Gemini model, as Google's models.get gives it. */
const INPUT_LIMIT = 1_048_576

const body = (tools: unknown[], text = 'summarize https://pages.test/tokens/900000'): string =>
  JSON.stringify({ contents: [{ parts: [{ text }] }], tools, generationConfig: { maxOutputTokens: 1 } })

async function post (url: string, key: string, json: string): Promise<Response> {
  return await fetch(`${url}/v1beta/models/${MODEL}:generateContent`, { method: 'POST', headers: { 'x-goog-api-key': key, 'content-type': 'application/json' }, body: json })
}

/** What Google was asked, in order (`GET models/…`, `generateContent`). */
const asked = (stack: { gemini: { requests: Array<{ method: string, path: string }> } }): string[] =>
  stack.gemini.requests.map((request) => `${request.method} ${request.path.replace(/^\/v1beta\//, '')}`)

const answer = (status: number, json: unknown) => (_req: unknown, res: ServerResponse) => {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(json))
}

t.test('budget outrun by URL context: a call whose pages could hold more than the budget has left is refused before Google fetches anything', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 500000\n')
  const holder = await signInWithKey(stack)
  const refused = await post(stack.url, holder.key, body([{ urlContext: {} }]))
  t.equal(refused.status, 429, 'a page of 900,000 tokens could be fetched, and only 500,000 are left')
  t.match(await refused.json(), { error: { status: 'RESOURCE_EXHAUSTED' } })
  t.same(asked(stack), [`GET models/${MODEL}`], 'Google was only asked for the model\'s input limit')
})

t.test('budget outrun by URL context in parallel: calls asking for one output token each cannot together spend past the budget', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 2500000\n')
  const holder = await signInWithKey(stack)
  const answers = await Promise.all(Array.from({ length: 8 }, async () => await post(stack.url, holder.key, body([{ url_context: {} }]))))
  const admitted = answers.filter((response) => response.status === 200)
  const usages = await Promise.all(admitted.map(async (response) => (await response.json() as { usageMetadata: { totalTokenCount: number } }).usageMetadata))
  await Promise.all(answers.map(async (response) => { if (!response.bodyUsed) await response.text() }))
  t.ok(admitted.length >= 1 && admitted.length <= 2, `at most two whole inputs of ${INPUT_LIMIT} tokens in a 2,500,000-token day (${admitted.length} admitted)`)
  const spent = usages.reduce((sum, usage) => sum + usage.totalTokenCount, 0)
  t.ok(spent <= 2_500_000, `the person spent ${spent} of 2,500,000`)
  t.equal(answers.filter((response) => response.status === 429).length, 8 - admitted.length, 'the rest over the budget')
  t.equal(asked(stack).filter((line) => line === `GET models/${MODEL}`).length, 1, 'the model\'s input limit was read once')
})

t.test('a call with server-side tools is charged what Google reports they brought in, and its reservation is given back', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 3000000\n')
  const holder = await signInWithKey(stack)
  const first = await post(stack.url, holder.key, body([{ codeExecution: {} }, { urlContext: {} }], 'compare https://pages.test/tokens/40000 and https://pages.test/tokens/60000'))
  t.equal(first.status, 200)
  const usage = (await first.json() as { usageMetadata: { toolUsePromptTokenCount: number, totalTokenCount: number } }).usageMetadata
  t.equal(usage.toolUsePromptTokenCount, 100_000)
  t.ok(Number(first.headers.get('x-ratelimit-remaining-tokens')) <= 3_000_000 - INPUT_LIMIT, 'reserved for the model\'s whole input')
  // Settled with the usage: the next call sees the pages charged, the rest of the reservation back.
  let remaining = 0
  for (let attempt = 0; attempt < 50; attempt++) {
    const next = await post(stack.url, holder.key, body([]))
    remaining = Number(next.headers.get('x-ratelimit-remaining-tokens'))
    await next.text()
    if (remaining > 3_000_000 - INPUT_LIMIT) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.ok(remaining <= 3_000_000 - usage.totalTokenCount && remaining > 3_000_000 - 200_000, `charged the ${usage.totalTokenCount} tokens Google reported (${remaining} left)`)
})

t.test('function declarations are the caller\'s own tools: they bring nothing in at Google, and are reserved as text', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 500000\n')
  const holder = await signInWithKey(stack)
  const tools = [{ functionDeclarations: [{ name: 'lookup', description: 'looks a word up' }] }, { function_declarations: [] }]
  const response = await post(stack.url, holder.key, body(tools))
  t.equal(response.status, 200)
  await response.text()
  t.same(asked(stack), [`POST models/${MODEL}:generateContent`])
})

t.test('search grounding under a dollar limit: billed per query, outside the usage Google reports, so refused as unpriced', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    usd_per_day: 50\n')
  const holder = await signInWithKey(stack)
  for (const tool of [{ googleSearch: {} }, { google_search_retrieval: {} }, { googleMaps: {} }, { enterpriseWebSearch: {} }]) {
    const response = await post(stack.url, holder.key, body([tool]))
    t.equal(response.status, 403, `${Object.keys(tool)[0]!} is refused`)
    t.match(await response.json(), { error: { status: 'PERMISSION_DENIED', message: /per search|per query|per grounded/ } })
  }
  t.same(asked(stack), [], 'nothing reached Google')
  // Under a token limit alone the query fees are no limit's business: the call is reserved for its whole input.
  const tokens = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 5000000\n')
  const searcher = await signInWithKey(tokens)
  const searched = await post(tokens.url, searcher.key, body([{ googleSearch: {} }], 'who won yesterday?'))
  t.equal(searched.status, 200)
  await searched.text()
  t.ok(Number(searched.headers.get('x-ratelimit-remaining-tokens')) <= 5_000_000 - INPUT_LIMIT)
})

t.test('a tool the gateway does not know runs at Google too: reserved for the whole input', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 500000\n')
  const holder = await signInWithKey(stack)
  for (const tools of [[{ somethingNew: {} }], [{ functionDeclarations: [], fileSearch: { fileSearchStoreNames: ['fileSearchStores/s'] } }], [{ computer_use: {} }]]) {
    const response = await post(stack.url, holder.key, body(tools, 'hello'))
    t.equal(response.status, 429, JSON.stringify(tools))
    await response.text()
  }
})

t.test('when Google will not give the model\'s input limit, a call with tools is not sent unreserved', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 5000000\n')
  const holder = await signInWithKey(stack)
  stack.gemini.onNext(answer(500, { error: { code: 500, message: 'internal', status: 'INTERNAL' } }))
  const unavailable = await post(stack.url, holder.key, body([{ urlContext: {} }]))
  t.equal(unavailable.status, 503)
  t.equal(unavailable.headers.get('retry-after'), '1')
  t.match(await unavailable.json(), { error: { status: 'UNAVAILABLE', message: /input limit/ } })
  stack.gemini.onNext(answer(200, { name: `models/${MODEL}` }))
  t.equal((await post(stack.url, holder.key, body([{ urlContext: {} }]))).status, 503, 'an answer without an input limit is none')
  stack.gemini.onNext(answer(404, { error: { code: 404, message: `models/${MODEL} is not found for API version v1beta`, status: 'NOT_FOUND' } }))
  const missing = await post(stack.url, holder.key, body([{ urlContext: {} }]))
  t.equal(missing.status, 404, 'what Google does not know it would not answer')
  t.match(await missing.json(), { error: { status: 'NOT_FOUND', message: /is not found/ } })
  t.notOk(asked(stack).some((line) => line.endsWith(':generateContent')), 'nothing was generated')
})

t.test('without a token or dollar limit, tools cost no extra call to Google', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    requests_per_minute: 100\n')
  const holder = await signInWithKey(stack)
  const response = await post(stack.url, holder.key, body([{ urlContext: {} }, { googleSearch: {} }]))
  t.equal(response.status, 200)
  await response.text()
  t.same(asked(stack), [`POST models/${MODEL}:generateContent`])
})

t.test('which tools run at Google: every kind but function declarations, and tools in a shape Google would not read as a list', async (t) => {
  t.equal(serverTools(undefined), undefined)
  t.equal(serverTools(null), undefined)
  t.equal(serverTools([]), undefined)
  t.equal(serverTools([{}, { functionDeclarations: [] }, { function_declarations: [] }]), undefined)
  t.same(serverTools([{ functionDeclarations: [], urlContext: {} }, { code_execution: {} }]), ['urlContext', 'code_execution'])
  t.same(serverTools({ urlContext: {} }), ['tools'], 'an object where a list belongs')
  t.same(serverTools(['urlContext', null]), ['tools', 'tools'], 'items that are not tools')
})

t.test('budget outrun by a duplicate key: tools, contents or a context cache named twice reach Google only as the gateway read them', async (t) => {
  // JSON.parse keeps the last of two keys; Google's parser may keep the first: a body naming
  // `tools` twice could show the gateway no tools and Google URL context.
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 5000000\n')
  const holder = await signInWithKey(stack)
  const text = { contents: [{ parts: [{ text: 'hi' }] }] }
  const cases: Array<[string, unknown]> = [
    ['{"contents":[{"parts":[{"text":"hi"}]}],"tools":[{"urlContext":{}}],"tools":[]}', { ...text, tools: [] }],
    [`{"contents":[{"parts":[{"inlineData":{"mimeType":"video/mp4","data":"${'A'.repeat(400)}"}}]}],"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"temperature":1}}`, { ...text, generationConfig: { temperature: 1 } }],
    ['{"cachedContent":"cachedContents/huge","contents":[{"parts":[{"text":"hi"}]}],"cached_content":"cachedContents/other","tools":[]}', { cachedContent: 'cachedContents/huge', ...text, tools: [] }],
  ]
  for (const [json, read] of cases) {
    const response = await post(stack.url, holder.key, json)
    await response.text()
    const raw = stack.gemini.requests.at(-1)!.rawBody.toString('utf8')
    t.same(JSON.parse(raw), read, `Google was sent what the gateway read: ${raw.slice(0, 100)}`)
    t.equal(raw.match(/"(?:tools|contents|cachedContent|cached_content)"/g)?.length, Object.keys(read as object).filter((key) => key !== 'generationConfig').length, 'each key once')
  }
})

t.test('Google failing while the policy reads a model\'s input limit: a reset is 502, an answer that never comes is 504, and nothing is generated', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 5000000\n', { env: { UPSTREAM_TIMEOUT_SECONDS: '1' } })
  const holder = await signInWithKey(stack)
  const describing = { match: (request: { method: string, path: string }) => request.method === 'GET' && request.path === `/v1beta/models/${MODEL}` }
  stack.gemini.fault({ kind: 'reset' }, describing)
  const reset = await post(stack.url, holder.key, body([{ urlContext: {} }]))
  t.equal(reset.status, 502)
  t.match(await reset.json(), { error: { code: 502, message: /could not be reached \(request id / } })
  stack.gemini.fault({ kind: 'hang' }, describing)
  const hung = await post(stack.url, holder.key, body([{ urlContext: {} }]))
  t.equal(hung.status, 504)
  t.notOk(asked(stack).some((line) => line.endsWith(':generateContent')), 'nothing was generated')
})

t.test('a caller out of requests is refused before Google is asked for the model\'s input limit', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    requests_per_minute: 1\n    tokens_per_day: 5000000\n')
  const holder = await signInWithKey(stack)
  const first = await post(stack.url, holder.key, body([{ urlContext: {} }], 'hello'))
  t.equal(first.status, 200)
  await first.text()
  // A model not read yet: the refusal comes before the read.
  const refused = await fetch(`${stack.url}/v1beta/models/gemini-3-pro-preview:generateContent`, { method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' }, body: body([{ urlContext: {} }], 'hello') })
  t.equal(refused.status, 429)
  await refused.text()
  t.notOk(asked(stack).includes('GET models/gemini-3-pro-preview'), 'no read for the refused call')
})

t.test('budget outrun by URL context kept in a context cache: Google never shows a cache\'s tools, so the gateway remembers them from the cache\'s making', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - name: owner\n    match: { emails: [\'owner@example.com\'] }\n  - default: true\n    tokens_per_day: 500000\n')
  stack.provider.addUser({ sub: 'owner', email: 'owner@example.com' })
  const owner = await signInWithKey(stack, { user: 'owner' })
  const holder = await signInWithKey(stack)
  const makeCache = async (tools: unknown[]): Promise<string> => {
    const created = await fetch(`${stack.url}/v1beta/cachedContents`, {
      method: 'POST',
      headers: { 'x-goog-api-key': owner.key, 'content-type': 'application/json' },
      body: JSON.stringify({ model: `models/${MODEL}`, contents: [{ role: 'user', parts: [{ text: 'read https://pages.test/tokens/900000' }] }], tools }),
    })
    t.equal(created.status, 200, 'the owner, without limits, makes a cache')
    return (await created.json() as { name: string }).name
  }
  const withTools = await makeCache([{ urlContext: {} }])
  const plain = await makeCache([])
  const call = async (cachedContent: string): Promise<Response> => await post(stack.url, holder.key, JSON.stringify({ cachedContent, contents: [{ parts: [{ text: 'summarize it' }] }], generationConfig: { maxOutputTokens: 1 } }))
  const refused = await call(withTools)
  t.equal(refused.status, 429, 'a cache whose URL context could fetch 900,000 tokens does not fit 500,000')
  await refused.text()
  t.notOk(asked(stack).some((line) => line.endsWith(':generateContent')), 'nothing was generated')
  const admitted = await call(plain)
  t.equal(admitted.status, 200, 'a cache made without tools is reserved for its size')
  await admitted.text()
  // A cache the gateway did not see made may hold any tool.
  const elsewhere = await call('cachedContents/made-elsewhere')
  t.equal(elsewhere.status, 429, 'a cache of unknown making is reserved for the whole input')
  await elsewhere.text()
})

t.test('search grounding kept in a context cache, under a dollar limit: refused like the same call with the tool in its body', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - name: owner\n    match: { emails: [\'owner@example.com\'] }\n  - default: true\n    usd_per_day: 50\n')
  stack.provider.addUser({ sub: 'owner', email: 'owner@example.com' })
  const owner = await signInWithKey(stack, { user: 'owner' })
  const holder = await signInWithKey(stack)
  const created = await fetch(`${stack.url}/v1beta/cachedContents`, {
    method: 'POST',
    headers: { 'x-goog-api-key': owner.key, 'content-type': 'application/json' },
    body: JSON.stringify({ model: `models/${MODEL}`, contents: [{ role: 'user', parts: [{ text: 'the news' }] }], tools: [{ googleSearch: {} }] }),
  })
  const { name } = await created.json() as { name: string }
  const response = await post(stack.url, holder.key, JSON.stringify({ cachedContent: name, contents: [{ parts: [{ text: 'what happened?' }] }] }))
  t.equal(response.status, 403)
  t.match(await response.json(), { error: { status: 'PERMISSION_DENIED', message: /googleSearch/ } })
  t.notOk(asked(stack).some((line) => line.endsWith(':generateContent')), 'nothing was generated')
})

t.test('a cache\'s tools are remembered for every replica: a cache made through one is reserved as made through another', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - name: owner\n    match: { emails: [\'owner@example.com\'] }\n  - default: true\n    tokens_per_day: 500000\n')
  stack.provider.addUser({ sub: 'owner', email: 'owner@example.com' })
  const owner = await signInWithKey(stack, { user: 'owner' })
  const holder = await signInWithKey(stack)
  const other = await buildApp(stack.config)
  t.teardown(async () => { await other.close() })
  await other.listen({ port: 0, host: '127.0.0.1' })
  const otherUrl = `http://127.0.0.1:${(other.server.address() as AddressInfo).port}`
  const makeCache = async (tools: unknown[]): Promise<string> => {
    const created = await fetch(`${stack.url}/v1beta/cachedContents`, {
      method: 'POST',
      headers: { 'x-goog-api-key': owner.key, 'content-type': 'application/json' },
      body: JSON.stringify({ model: `models/${MODEL}`, contents: [{ role: 'user', parts: [{ text: 'read https://pages.test/tokens/900000' }] }], tools }),
    })
    return (await created.json() as { name: string }).name
  }
  const call = async (cachedContent: string): Promise<number> => {
    const response = await post(otherUrl, holder.key, JSON.stringify({ cachedContent, contents: [{ parts: [{ text: 'summarize it' }] }], generationConfig: { maxOutputTokens: 1 } }))
    await response.text()
    return response.status
  }
  t.equal(await call(await makeCache([{ urlContext: {} }])), 429, 'made with URL context through the first replica, refused through the second')
  t.equal(await call(await makeCache([])), 200, 'made without tools, reserved for its size through the second')
})
