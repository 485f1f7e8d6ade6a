import t from 'tap'
import { signInWithKey, type ProxyStack } from './helpers/person.js'
import { eventually, startPolicyStack } from './helpers/policy.js'

// Issue 14: "a single call cannot run a person past their budget". Google bills a generation it
// has begun whether or not its client stays to read it: its SDK says of aborting a call that it
// "will not cancel the request in the service. You will still be charged usage". A client that
// hangs up (a script whose timeout is shorter than its generations, retrying in a loop; or one
// that means to) was charged by the gateway only what it had read, usually the prompt, while
// Google billed the whole answer: a runaway that never reaches its budget. The fake Gemini bills
// each generation whole when it begins (RecordedRequest.billedTokens), as Google does.

const MODEL = 'gemini-3-flash-preview'
/** About 2,000 prompt tokens; the fake's answer echoes them, so Google bills about twice that. */
const PROMPT = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'fox '.repeat(2_000) }] }], generationConfig: { maxOutputTokens: 5_000 } })

/** The tokens charged today, from /auth/me (the reservation of a call in flight included). */
async function used (browser: { fetch: (path: string) => Promise<Response> }): Promise<number> {
  const me = await (await browser.fetch('/auth/me')).json() as { limits: Array<{ name: string, used: number }> }
  return me.limits.find((limit) => limit.name === 'tokens_per_day')!.used
}

/** Starts a stream of PROMPT and reads its first chunk; abort the controller to hang up. */
async function firstChunk (url: string, key: string): Promise<AbortController> {
  const abort = new AbortController()
  const response = await fetch(`${url}/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`, {
    method: 'POST',
    signal: abort.signal,
    headers: { 'x-goog-api-key': key, 'content-type': 'application/json' },
    body: PROMPT,
  })
  await response.body!.getReader().read()
  return abort
}

/** Calls generateContent with PROMPT and hangs up as soon as Google has the call (the fake is slow to answer); the client's error. */
async function hangUpOnceSent (stack: ProxyStack, key: string): Promise<unknown> {
  const sent = stack.gemini.requests.length
  const abort = new AbortController()
  const call = fetch(`${stack.url}/v1beta/models/${MODEL}:generateContent`, {
    method: 'POST',
    signal: abort.signal,
    headers: { 'x-goog-api-key': key, 'content-type': 'application/json' },
    body: PROMPT,
  }).catch((error: unknown) => error)
  await eventually(async () => stack.gemini.requests.length, (count) => count > sent)
  abort.abort()
  return await call
}

const billed = (stack: { gemini: { requests: Array<{ billedTokens?: number }> } }): number =>
  stack.gemini.requests.reduce((sum, request) => sum + (request.billedTokens ?? 0), 0)

t.test('budget escape by hanging up mid-stream: the gateway reads the answer to its end and charges what Google billed', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 100000\n', { gemini: { chunkCount: 4, chunkDelayMs: 300 } })
  const holder = await signInWithKey(stack)
  const abort = await firstChunk(stack.url, holder.key)
  abort.abort()
  const bill = billed(stack)
  t.ok(bill > 4_000, `Google bills the whole answer (${bill} tokens)`)
  const charged = await eventually(async () => await used(holder.browser), (value) => value < 5_000)
  t.equal(charged, bill, 'charged what Google billed, not the prompt read so far')
  t.equal(stack.gemini.aborted, 0, 'the upstream call was read to its end, not cancelled')
})

t.test('budget escape by hanging up before the answer: a call its client left while Google worked is charged what Google billed', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    usd_per_day: 10\n    tokens_per_day: 100000\n')
  const holder = await signInWithKey(stack)
  stack.gemini.fault({ kind: 'delay', ms: 600 })
  t.type(await hangUpOnceSent(stack, holder.key), Error, 'the client gave up before the answer')
  const charged = await eventually(async () => await used(holder.browser), (value) => value < 5_000)
  const bill = billed(stack)
  t.ok(bill > 4_000, `Google bills the whole answer (${bill} tokens)`)
  t.equal(charged, bill, 'charged what Google billed, not only the prompt')
  t.equal(stack.gemini.aborted, 0, 'the upstream call was read to its end, not cancelled')

  // Ten such calls in a row: each is charged whole, so the budget still holds them.
  for (let index = 0; index < 10; index++) {
    stack.gemini.fault({ kind: 'delay', ms: 300 })
    await hangUpOnceSent(stack, holder.key)
  }
  const total = await eventually(async () => await used(holder.browser), (value) => value === billed(stack))
  t.equal(total, billed(stack), 'every abandoned call charged as Google billed it')
})

t.test('budget escape by hanging up on the OpenAI-compatible endpoint: a chat completion stream left mid-way is charged what Google billed', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 100000\n', { gemini: { chunkDelayMs: 40 } })
  const holder = await signInWithKey(stack)
  const abort = new AbortController()
  const response = await fetch(`${stack.url}/v1beta/openai/chat/completions`, {
    method: 'POST',
    signal: abort.signal,
    headers: { authorization: `Bearer ${holder.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, stream: true, max_completion_tokens: 5_000, messages: [{ role: 'user', content: 'fox '.repeat(20).trim() }] }),
  })
  await response.body!.getReader().read()
  abort.abort()
  const charged = await eventually(async () => await used(holder.browser), (value) => value < 1_000)
  const bill = billed(stack)
  t.ok(bill > 40, `Google bills the whole answer (${bill} tokens)`)
  t.equal(charged, bill, 'charged what Google billed, not the prompt read so far')
  t.equal(stack.gemini.aborted, 0, 'the upstream call was read to its end, not cancelled')
})

t.test('a caller without a token or dollar limit still cancels the upstream call when they hang up (SPEC: a client that disconnects aborts the upstream request)', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    requests_per_minute: 100\n', { gemini: { chunkCount: 4, chunkDelayMs: 300 } })
  const holder = await signInWithKey(stack)
  const abort = await firstChunk(stack.url, holder.key)
  const aborted = stack.gemini.nextAbort()
  abort.abort()
  t.ok((await aborted).aborted, 'the upstream call was cancelled')
})
