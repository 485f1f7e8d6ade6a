import t from 'tap'
import { openAiUsage } from '../src/openai/usage.js'
import { billedTokens } from '../src/policy/enforcer.js'
import { signInWithKey } from './helpers/person.js'
import { eventually, startPolicyStack } from './helpers/policy.js'

// Issue 14: "Cost is computed from what Google reports it served". Google bills a prompt's audio
// at a dearer price than its text, images and video (Gemini 3 Flash: $1.00 per 1M audio tokens
// against $0.50), and says how much of a prompt was audio in usageMetadata.promptTokensDetails
// (and countTokens' answer). The gateway priced every prompt token at the text price: a person
// whose prompts were audio spent up to twice (Gemini 2.5 Flash: 3.3 times) their dollar budget,
// and a call's reservation, priced the same way, let one call run past what was left. The fake
// counts a token per four base64 characters of audio and reports it under AUDIO, as Google does.

const MODEL = 'gemini-3-flash-preview'
const AUDIO_TOKENS = 100_000
const audio = { inlineData: { mimeType: 'audio/wav', data: 'A'.repeat(AUDIO_TOKENS * 4) } }
const body = (maxOutputTokens?: number): string => JSON.stringify({
  contents: [{ role: 'user', parts: [{ text: 'listen to this' }, audio] }],
  ...(maxOutputTokens === undefined ? {} : { generationConfig: { maxOutputTokens } }),
})

interface Me { policy: { today: { usd: number } } }
const todayUsd = async (browser: { fetch: (path: string) => Promise<Response> }): Promise<number> =>
  ((await (await browser.fetch('/auth/me')).json()) as Me).policy.today.usd

async function post (url: string, key: string, json: string): Promise<Response> {
  return await fetch(`${url}/v1beta/models/${MODEL}:generateContent`, { method: 'POST', headers: { 'x-goog-api-key': key, 'content-type': 'application/json' }, body: json })
}

t.test('budget outrun by audio at the text price: an audio prompt is charged at the audio price Google bills', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    usd_per_day: 100\n')
  const holder = await signInWithKey(stack)
  const response = await post(stack.url, holder.key, body())
  t.equal(response.status, 200)
  const answer = await response.json() as { usageMetadata: { promptTokensDetails: Array<{ modality: string, tokenCount: number }> } }
  t.same(answer.usageMetadata.promptTokensDetails, [{ modality: 'TEXT', tokenCount: 3 }, { modality: 'AUDIO', tokenCount: AUDIO_TOKENS }], 'Google said which tokens were audio')
  // 3 text tokens at $0.50/1M, 100,000 audio tokens at $1.00/1M, 4 output tokens ("Echo: listen to this") at $3/1M.
  const usd = await eventually(async () => await todayUsd(holder.browser), (spent) => spent > 0)
  t.ok(Math.abs(usd - 0.1000135) < 1e-6, `charged $0.1000135 (got $${usd}; at the text price it would be $0.0500135)`)
})

t.test('budget outrun by audio at the text price: a call whose audio the budget cannot pay for is refused before Google generates', async (t) => {
  // $0.08 left: the audio alone costs $0.10 at Google's price ($0.05 at the text price).
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    usd_per_day: 0.08\n')
  const holder = await signInWithKey(stack)
  const response = await post(stack.url, holder.key, body(1))
  t.equal(response.status, 429, 'over the dollar budget')
  await response.text()
  t.same(stack.gemini.requests.map((request) => request.path.replace(/^.*:/, '')), ['countTokens'], 'Google only counted it')
  t.equal(await todayUsd(holder.browser), 0, 'nothing spent')
})

t.test('a call with images and video but no audio is still priced at the text price', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    usd_per_day: 100\n')
  const holder = await signInWithKey(stack)
  const video = { inlineData: { mimeType: 'video/mp4', data: 'A'.repeat(AUDIO_TOKENS * 4) } }
  const response = await post(stack.url, holder.key, JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'watch this' }, video] }] }))
  t.equal(response.status, 200)
  await response.text()
  // 2 text and 100,000 video tokens at $0.50/1M, 3 output tokens at $3/1M.
  const usd = await eventually(async () => await todayUsd(holder.browser), (spent) => spent > 0)
  t.ok(Math.abs(usd - 0.050010) < 1e-6, `charged $0.050010 (got $${usd})`)
})

t.test('the OpenAI-compatible surface\'s usage: prompt_tokens_details.audio_tokens is the prompt\'s audio', async (t) => {
  const usage = openAiUsage({ usage: { prompt_tokens: 1_000, completion_tokens: 10, total_tokens: 1_010, prompt_tokens_details: { audio_tokens: 800, cached_tokens: 0 } } })
  t.match(billedTokens(usage!), { prompt: 1_000, audio: 800, cachedAudio: 0, output: 10 })
  t.match(billedTokens(openAiUsage({ usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 } })!), { prompt: 5, audio: 0 }, 'none named: no audio')
  // Lists from the wire are read defensively: a bad entry counts nothing.
  t.equal(billedTokens({ promptTokenCount: 9, promptTokensDetails: [null as never, { modality: 'AUDIO', tokenCount: 'x' }, { modality: 'AUDIO', tokenCount: 4 }] }).audio, 4)
})
