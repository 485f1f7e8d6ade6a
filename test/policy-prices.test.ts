import type { ServerResponse } from 'node:http'
import { GoogleGenAI } from '@google/genai'
import t from 'tap'
import type { RecordedRequest, RequestHandler } from './fixtures/gemini.js'
import { signInWithKey } from './helpers/person.js'
import { eventually, startPolicyStack } from './helpers/policy.js'
import { PriceTable } from '../src/policy/prices.js'

// Issue 14: Google bills the Pro models' prompts over 200K tokens at a dearer price. A call is
// reserved at the price its estimated prompt size falls in, and settled at its real size's.

interface Me { policy: { today: { usd: number } } }

/** Answers as Google does, reporting `promptTokenCount` prompt tokens and 100 output tokens. */
function answering (promptTokenCount: number): RequestHandler {
  return (_req, res: ServerResponse, request: RecordedRequest) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({
      candidates: [{ content: { role: 'model', parts: [{ text: 'long read' }] }, index: 0, finishReason: 'STOP' }],
      usageMetadata: { promptTokenCount, candidatesTokenCount: 100, totalTokenCount: promptTokenCount + 100 },
      modelVersion: request.path.split('/').at(-1)!.split(':')[0],
    }))
  }
}

const todayUsd = async (browser: { fetch: (path: string) => Promise<Response> }): Promise<number> =>
  ((await (await browser.fetch('/auth/me')).json()) as Me).policy.today.usd

t.test('a Pro call is settled at the long-context price once its real prompt passes 200K tokens', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    usd_per_day: 100\n')
  const holder = await signInWithKey(stack)
  const ai = new GoogleGenAI({ apiKey: holder.key, httpOptions: { baseUrl: stack.url } })

  stack.gemini.onNext(answering(200_000))
  await ai.models.generateContent({ model: 'gemini-3-pro-preview', contents: 'a long document' })
  // 200,000 prompt tokens at $2/1M, 100 output tokens at $12/1M: the shipped price up to 200K.
  t.equal(await eventually(async () => await todayUsd(holder.browser), (usd) => usd > 0), 0.4012, 'just under: the ordinary price')

  stack.gemini.onNext(answering(200_001))
  await ai.models.generateContent({ model: 'gemini-3-pro-preview', contents: 'a longer document' })
  // 200,001 prompt tokens at $4/1M, 100 output tokens at $18/1M.
  const total = await eventually(async () => await todayUsd(holder.browser), (usd) => usd > 0.4012)
  t.equal(Math.round((total - 0.4012) * 1e6) / 1e6, 0.801804, 'just over: the long-context price for input and output')
})

t.test('a reservation is priced by the estimated prompt size: a long prompt lowers maxOutputTokens at the dearer price', async (t) => {
  const prices = `prices:
  gemini-tiered:
    - { from: '2020-01-01', input: 1, output: 1, above_200k: { input: 2, output: 2 } }
policy:
  - default: true
    usd_per_day: 1
`
  const stack = await startPolicyStack(t, prices)
  const holder = await signInWithKey(stack)
  // Text is estimated at three bytes a token; a part without `role` counts only its text.
  const call = async (textBytes: number): Promise<number> => {
    // A prompt this long is counted by Google first: one word to the fake, so the estimate stands.
    stack.gemini.onNext((_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ totalTokens: 1 })) })
    stack.gemini.onNext(answering(1))
    const response = await fetch(`${stack.url}/v1beta/models/gemini-tiered:generateContent`, {
      method: 'POST',
      headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' },
      body: JSON.stringify({ contents: [{ parts: [{ text: 'a'.repeat(textBytes) }] }], generationConfig: { maxOutputTokens: 1_000_000 } }),
    })
    t.equal(response.status, 200)
    await response.text()
    return Number(response.headers.get('x-gemgate-max-output-tokens'))
  }
  // $1 = 1e9 nano-USD. Up to 200K: (1e9 - 199,999 × 1,000) / 1,000 output tokens.
  t.equal(await call(599_997), 800_001, 'an estimated 199,999-token prompt: the ordinary price')
  // Settled at 1 prompt token and 100 output tokens: $0.000101 spent so far.
  await eventually(async () => await todayUsd(holder.browser), (usd) => usd > 0)
  // Over 200K: (1e9 - 101,000 - 200,001 × 2,000) / 2,000 output tokens.
  t.equal(await call(600_003), Math.floor((1e9 - 101_000 - 200_001 * 2_000) / 2_000), 'an estimated 200,001-token prompt: the long-context price')
})

t.test('cost escape by a dearer model named like a cheaper one: only a version or a date extends a listed name', async (t) => {
  const table = new PriceTable({})
  const day = Date.parse('2026-06-01T12:00:00Z')
  const flash = table.priceOf('gemini-3-flash-preview', day)
  for (const version of ['gemini-3-flash-preview-001', 'gemini-3-flash-preview-09-2026', 'gemini-3-flash-preview-latest']) {
    t.same(table.priceOf(version, day), flash, `${version} is a version of a listed model`)
  }
  // Image and speech models share the names of text models, at many times their output price.
  t.equal(table.priceOf('gemini-2.5-flash-image', day).output, 30_000, 'Nano Banana: $30 per 1M output tokens, not 2.5 Flash\'s $2.50')
  t.equal(table.priceOf('gemini-2.5-flash-image-preview', day).output, 30_000)
  t.equal(table.priceOf('gemini-3-pro-image-preview', day).output, 120_000)
  t.equal(table.priceOf('gemini-2.5-flash-preview-tts', day).output, 10_000)
  t.equal(table.priceOf('gemini-2.5-pro-preview-tts', day).output, 20_000)
  // A name the table does not know, however it begins, is charged like the dearest listed model.
  for (const unknown of ['gemini-3-flash-preview-native-audio', 'gemini-3.8-flash-image', 'gemini-3-pro-preview-customtools', 'gemini-next']) {
    t.equal(table.priceOf(unknown, day).output, 120_000, `${unknown}: the dearest price`)
    t.equal(table.labelOf(unknown), 'other')
  }
})

t.test('cost escape by a dearer model named like a cheaper one, at the gateway: an image model\'s call is reserved and settled at its own price', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    usd_per_day: 1\n')
  const holder = await signInWithKey(stack)
  const draw = async (model: string): Promise<Response> => await fetch(`${stack.url}/v1beta/models/${model}:generateContent`, {
    method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' }, body: JSON.stringify({ contents: [{ parts: [{ text: 'draw a cat' }] }] }),
  })
  const text = await draw('gemini-3-flash-preview')
  await text.text()
  t.equal(text.headers.get('x-gemgate-max-output-tokens'), null, '65,536 output tokens at $3/1M fit a $1 day')
  // One image is 1,290 output tokens at $30/1M.
  stack.gemini.onNext((_req, res, request) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ candidates: [], usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 1290, totalTokenCount: 1293 }, modelVersion: request.path.split('/').at(-1)!.split(':')[0] }))
  })
  const image = await draw('gemini-2.5-flash-image')
  await image.text()
  t.equal(image.status, 200)
  const granted = image.headers.get('x-gemgate-max-output-tokens')
  t.ok(granted !== null && Number(granted) < 33_334, `at $30/1M, $1 pays for fewer than 33,334 output tokens: lowered to ${granted}`)
  const spent = await eventually(async () => await todayUsd(holder.browser), (usd) => usd > 0.038)
  t.ok(spent >= 0.0387, `the image charged at $30/1M (${spent} today)`)
})
