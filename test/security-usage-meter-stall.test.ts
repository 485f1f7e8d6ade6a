import { request as httpRequest, type IncomingMessage } from 'node:http'
import { once } from 'node:events'
import { gzipSync } from 'node:zlib'
import t from 'tap'
import { loadUsage } from '../src/proxy/usage.js'
import { UsageTap, type ObservedUsage } from '../src/proxy/usage-tap.js'
import { personWithKey, startProxyStack } from './helpers/person.js'

// The attack: an answer of several MB (a long generation, a big array of stream chunks, one
// huge SSE line), or a burst of them, made the usage meter buffer the whole body and parse it
// in one go, stalling every other request on the replica. The meter must hold a bounded
// amount and do work in proportion to each chunk, whatever the answer's size.

const ANSWER_BYTES = 7.8 * 1024 * 1024
const CHUNK_BYTES = 64 * 1024
/** What the meter may hold at any moment: the usage values it keeps, never the body. */
const RETAINED_BOUND = 64 * 1024
const USAGE = { promptTokenCount: 11, cachedContentTokenCount: 3, candidatesTokenCount: 22, thoughtsTokenCount: 5, toolUsePromptTokenCount: 0, totalTokenCount: 38 }

/** One stream chunk of about `textBytes`, as `:streamGenerateContent` answers them. */
function element (textBytes: number, usage?: typeof USAGE): Record<string, unknown> {
  return {
    candidates: [{ content: { role: 'model', parts: [{ text: 'a fox "quoted" \\ '.repeat(Math.ceil(textBytes / 21)) }] }, index: 0 }],
    // The model's own output mentioning usageMetadata (a function call's arguments): never counted.
    ...(usage === undefined ? {} : { usageMetadata: { ...usage, promptTokensDetails: [{ modality: 'TEXT', tokenCount: 11 }] }, modelVersion: 'gemini-2.5-flash-001' }),
  }
}

/** A JSON array of stream chunks totalling about ANSWER_BYTES, the usage on the last. */
function bigArray (): Buffer {
  const parts = Array.from({ length: 16 }, (_, index) => element(ANSWER_BYTES / 16, index === 15 ? USAGE : { ...USAGE, totalTokenCount: 1 }))
  return Buffer.from(JSON.stringify(parts))
}

/** A JSON object whose usage comes first and whose model output, last, carries a usageMetadata of its own. */
function bigObject (): Buffer {
  const decoy = { functionCall: { name: 'f', args: { usageMetadata: { totalTokenCount: 999_999 } } } }
  return Buffer.from(JSON.stringify({
    usageMetadata: USAGE,
    modelVersion: 'gemini-2.5-flash-001',
    candidates: [{ content: { parts: [{ text: 'x'.repeat(ANSWER_BYTES) }, decoy] } }],
  }))
}

/** Feeds `body` to a tap in fresh chunks, as a socket hands them over; the most it held at once, and what it reported. */
async function meter (body: Buffer, contentType: string, contentEncoding = ''): Promise<{ mostRetained: number, observed: ObservedUsage | undefined }> {
  let observed: ObservedUsage | undefined
  let reported!: () => void
  const done = new Promise<void>((resolve) => { reported = resolve })
  const tap = new UsageTap(contentType, contentEncoding, (usage) => { observed = usage; reported() })
  let mostRetained = 0
  for (let at = 0; at < body.length; at += CHUNK_BYTES) {
    tap.write(Buffer.from(body.subarray(at, at + CHUNK_BYTES)))
    mostRetained = Math.max(mostRetained, tap.retainedBytes)
  }
  tap.end()
  // A compressed body is still being decompressed on the side; a meter that never reports fails below.
  const bound = setTimeout(reported, 5_000)
  await done
  clearTimeout(bound)
  return { mostRetained, observed }
}

/**
 * The longest text handed to JSON.parse while `run` runs, in this process (the gateway, the
 * fake upstream and the clients alike): one synchronous parse is work the event loop cannot
 * interrupt, so its size is the work one turn may have to do. Counted, not timed.
 */
async function largestParse<T> (run: () => Promise<T>): Promise<{ result: T, largest: number }> {
  const parse = JSON.parse
  let largest = 0
  JSON.parse = (text: string, reviver?: Parameters<typeof JSON.parse>[1]) => {
    largest = Math.max(largest, text.length)
    return parse(text, reviver) as unknown
  }
  try {
    return { result: await run(), largest }
  } finally {
    JSON.parse = parse
  }
}

/** Asks /healthz one call after another until `until` settles: how many were answered meanwhile. */
async function pingDuring (url: string, until: Promise<unknown>): Promise<number> {
  let done = false
  void until.finally(() => { done = true })
  let answered = 0
  while (!done) {
    const response = await fetch(`${url}/healthz`)
    await response.arrayBuffer()
    if (response.ok && !done) answered++
  }
  return answered
}

const EXPECTED = { usage: USAGE, modelVersion: 'gemini-2.5-flash-001' }

t.test('the meter holds a bounded amount of any answer, and still reads every usage field', async (t) => {
  const cases: Array<[string, Buffer, string, string?]> = [
    ['a 7.8 MB JSON array of stream chunks', bigArray(), 'application/json; charset=UTF-8'],
    ['a 7.8 MB JSON object whose model output names usageMetadata', bigObject(), 'application/json'],
    ['one SSE event of 7.8 MB', Buffer.from(`data: ${bigObject().toString()}\r\n\r\n`), 'text/event-stream'],
    ['many SSE events, the last with usage', Buffer.from(Array.from({ length: 200 }, (_, index) => `data: ${JSON.stringify(element(40_000, index === 199 ? USAGE : undefined))}\r\n\r\n`).join('')), 'text/event-stream'],
    ['a gzip-compressed 7.8 MB JSON object', gzipSync(bigObject()), 'application/json', 'gzip'],
  ]
  for (const [name, body, type, encoding] of cases) {
    const { mostRetained, observed } = await meter(body, type, encoding)
    t.ok(mostRetained <= RETAINED_BOUND, `${name}: at most ${RETAINED_BOUND} bytes held (held ${mostRetained})`)
    // The stream chunks report the prompt's modalities too (a prompt's audio is billed at its own price).
    const expected = name.includes('stream chunks') || name.includes('many SSE') ? { ...EXPECTED, usage: { ...USAGE, promptTokensDetails: [{ modality: 'TEXT', tokenCount: 11 }] } } : EXPECTED
    t.same(observed, expected, `${name}: modelVersion and prompt, cached, candidates, thoughts, tool-use and total counts, and the prompt's modalities`)
  }
})

t.test('a burst of 16 concurrent 7.8 MB answers does not stall the replica, and every one is metered', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const holder = await personWithKey(stack)
  const answer = bigArray()
  const burst = 16
  for (let index = 0; index < burst; index++) {
    stack.gemini.onNext((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json; charset=UTF-8', 'content-length': answer.length })
      let at = 0
      const pump = (): void => {
        while (at < answer.length) {
          const piece = answer.subarray(at, at += CHUNK_BYTES)
          if (!response.write(piece)) {
            response.once('drain', pump)
            return
          }
        }
        response.end()
      }
      pump()
    })
  }
  const call = async (): Promise<number> => {
    const request = httpRequest(`${stack.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent`, {
      method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' },
    })
    request.end('{"contents":[{"parts":[{"text":"a long answer"}]}]}')
    const [response] = await once(request, 'response') as [IncomingMessage]
    let bytes = 0
    for await (const chunk of response) bytes += (chunk as Buffer).length
    return bytes
  }
  const { result: [received, pings], largest } = await largestParse(async () => {
    const answers = Promise.all(Array.from({ length: burst }, call))
    return await Promise.all([answers, pingDuring(stack.url, answers)])
  })
  t.same(received, Array.from({ length: burst }, () => answer.length), 'every answer reached its client whole')
  t.ok(pings > 0, `other requests were answered while the big answers flowed (${pings})`)
  // Work, not speed: the old meter parsed each whole body in one go; the new one parses only the usage values it kept.
  t.ok(largest <= RETAINED_BOUND, `no JSON text bigger than ${RETAINED_BOUND} bytes was parsed in one go (largest ${largest})`)
  let usage = await loadUsage(stack.app.store, holder.personId)
  for (let attempt = 0; attempt < 50 && usage.totals.requests < burst; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    usage = await loadUsage(stack.app.store, holder.personId)
  }
  t.same(usage.totals, { requests: burst, prompt: burst * USAGE.promptTokenCount, candidates: burst * USAGE.candidatesTokenCount, total: burst * USAGE.totalTokenCount }, 'the last chunk\'s usage of each answer was counted')
})
