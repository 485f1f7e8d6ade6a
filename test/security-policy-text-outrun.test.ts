import t from 'tap'
import { signInWithKey } from './helpers/person.js'
import { startPolicyStack } from './helpers/policy.js'

// Issue 14: "so a single call cannot run a person past their budget". A text prompt was reserved
// at three bytes a token, which holds for prose but not for text made to defeat it: Gemini's
// tokenizer splits digits one by one and falls back to single bytes for characters it does not
// know, so a prompt can be a token per byte, three times its estimate. The fake's tokenizer makes
// each word a token: "a a a …" is a token per two bytes, half again its estimate. A prompt whose
// text is long enough for that to matter is now counted by Google's countTokens (free) before it
// is reserved, as a prompt holding media is; a shorter one is reserved for a token per byte, the
// most it can be.

const MODEL = 'gemini-3-flash-preview'
/** 40 KB of one-letter words: 20,480 tokens to the fake, estimated at 13,654. */
const PROMPT = 'a '.repeat(20_480)
// The fake echoes the last turn: a short one, so that the answer is two tokens.
const body = JSON.stringify({
  contents: [{ role: 'user', parts: [{ text: PROMPT }] }, { role: 'model', parts: [{ text: 'ok' }] }, { role: 'user', parts: [{ text: 'summarise' }] }],
  generationConfig: { maxOutputTokens: 2 },
})

async function post (url: string, key: string): Promise<Response> {
  return await fetch(`${url}/v1beta/models/${MODEL}:generateContent`, { method: 'POST', headers: { 'x-goog-api-key': key, 'content-type': 'application/json' }, body })
}

/** The methods Google was asked for, in order (`countTokens`, `generateContent`). */
const methodsAsked = (stack: { gemini: { requests: Array<{ path: string }> } }): string[] => stack.gemini.requests.map((request) => request.path.replace(/^.*:/, ''))

t.test('budget outrun by text denser than its estimate: one call cannot spend past what is left', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 15000\n')
  const holder = await signInWithKey(stack)
  const response = await post(stack.url, holder.key)
  t.equal(response.status, 429, 'a 20,482-token prompt does not fit a 15,000-token day')
  await response.text()
  t.same(methodsAsked(stack), ['countTokens'], 'Google only counted it')
})

t.test('budget outrun by text denser than its estimate, in parallel: the calls together stay inside the budget', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 45000\n')
  const holder = await signInWithKey(stack)
  const answers = await Promise.all([1, 2, 3].map(async () => await post(stack.url, holder.key)))
  await Promise.all(answers.map(async (response) => await response.text()))
  const billed = stack.gemini.requests.reduce((sum, request) => sum + (request.billedTokens ?? 0), 0)
  t.ok(billed <= 45_000, `Google billed ${billed} tokens of a 45,000-token day`)
  t.same(answers.map((response) => response.status).sort(), [200, 200, 429], 'two fit, the third is refused')
})

t.test('budget outrun by dense text under the counted size, in parallel: reserved for a token per byte, the calls together stay inside the budget', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 40000\n')
  const holder = await signInWithKey(stack)
  // 30 KB of one-letter words (15,362 tokens to the fake, 10,255 at three bytes a token): not counted by Google.
  const short = JSON.stringify({
    contents: [{ role: 'user', parts: [{ text: 'a '.repeat(15_360) }] }, { role: 'model', parts: [{ text: 'ok' }] }, { role: 'user', parts: [{ text: 'summarise' }] }],
    generationConfig: { maxOutputTokens: 2 },
  })
  t.ok(Buffer.byteLength(short) < 32 * 1024)
  const answers = await Promise.all([1, 2, 3].map(async () => await fetch(`${stack.url}/v1beta/models/${MODEL}:generateContent`, {
    method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' }, body: short,
  })))
  await Promise.all(answers.map(async (response) => await response.text()))
  const billed = stack.gemini.requests.reduce((sum, request) => sum + (request.billedTokens ?? 0), 0)
  t.ok(billed <= 40_000, `Google billed ${billed} tokens of a 40,000-token day`)
  t.notOk(methodsAsked(stack).includes('countTokens'), 'none was counted')
  t.ok(answers.some((response) => response.status === 200), 'a call that fits is admitted')
})

t.test('a short text prompt is not counted: no round trip before it', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 100000\n')
  const holder = await signInWithKey(stack)
  const response = await fetch(`${stack.url}/v1beta/models/${MODEL}:generateContent`, {
    method: 'POST',
    headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' },
    body: JSON.stringify({ contents: [{ parts: [{ text: 'a '.repeat(1_000) }] }] }),
  })
  t.equal(response.status, 200)
  await response.text()
  t.same(methodsAsked(stack), ['generateContent'])
})
