import { gzipSync } from 'node:zlib'
import { GoogleGenAI } from '@google/genai'
import t from 'tap'
import { signInWithKey, startProxyStack } from './helpers/person.js'

const MODEL = 'gemini-2.5-flash'

type Counts = Record<string, number>

/** The person's usage from /auth/me, once it counts `requests` calls (usage is written after the last byte has gone), or as it is after about a second. */
async function usageOnceCounted (holder: { browser: { fetch: (path: string) => Promise<Response> } }, requests: number): Promise<{ totals: Counts, byModel: Record<string, Counts> } | undefined> {
  let usage: { totals: Counts, byModel: Record<string, Counts> } | undefined
  for (let attempt = 0; attempt < 50 && usage?.totals.requests !== requests; attempt++) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 20))
    usage = (await (await holder.browser.fetch('/auth/me')).json() as { usage: typeof usage }).usage
  }
  return usage
}

t.test('the official SDK, given only a gateway key and the gateway URL, works unchanged', async (t) => {
  const stack = await startProxyStack(t, { gemini: { chunkCount: 4 } })
  const holder = await signInWithKey(stack)
  const ai = new GoogleGenAI({ apiKey: holder.key, httpOptions: { baseUrl: stack.url } })
  const record = await stack.app.vault.load(holder.personId)

  const generated = await ai.models.generateContent({ model: MODEL, contents: 'hello gateway' })
  t.equal(generated.text, 'Echo: hello gateway')
  t.equal(generated.usageMetadata?.totalTokenCount, 5)

  // Each chunk is handed over before the fake has written the next: the gateway holds nothing back.
  const written: number[] = []
  const seen: number[] = []
  stack.gemini.onNext(async (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    for (let index = 0; index < 3; index++) {
      const chunk = { candidates: [{ content: { role: 'model', parts: [{ text: `part${index} ` }] }, index: 0 }], modelVersion: MODEL }
      res.write(`data: ${JSON.stringify(chunk)}\r\n\r\n`)
      written.push(index)
      // Waits for the client to get this chunk (bounded, so a buffering gateway fails the assertion below instead of hanging).
      for (let wait = 0; wait < 400 && seen.length <= index; wait++) await new Promise((resolve) => setTimeout(resolve, 5))
    }
    res.end()
  })
  const texts: string[] = []
  for await (const chunk of await ai.models.generateContentStream({ model: MODEL, contents: 'stream please' })) {
    seen.push(texts.length)
    t.equal(written.length, texts.length + 1, `chunk ${texts.length} arrived while the upstream had written only it`)
    texts.push(chunk.text ?? '')
  }
  t.same(texts, ['part0 ', 'part1 ', 'part2 '])

  const streamed: string[] = []
  for await (const chunk of await ai.models.generateContentStream({ model: MODEL, contents: 'one two three' })) streamed.push(chunk.text ?? '')
  t.equal(streamed.length, 4, 'the fake streamed four chunks, all delivered')
  t.equal(streamed.join(''), 'Echo: one two three')

  const counted = await ai.models.countTokens({ model: MODEL, contents: 'one two three' })
  t.equal(counted.totalTokens, 3)

  const embedded = await ai.models.embedContent({ model: 'gemini-embedding-001', contents: ['first text', 'second text'] })
  t.equal(embedded.embeddings?.length, 2)
  t.ok(stack.gemini.requests.some((request) => request.path.endsWith(':batchEmbedContents')), 'embedContent went as :batchEmbedContents')

  const bytes = Buffer.from('file content through the gateway\n'.repeat(100))
  const file = await ai.files.upload({ file: new Blob([bytes], { type: 'text/plain' }), config: { displayName: 'notes.txt' } })
  t.equal(file.sizeBytes, String(bytes.length))
  t.same(stack.gemini.files.get(file.name!)?.content, bytes, 'the upstream has the exact bytes')
  const uploads = stack.gemini.requests.filter((request) => request.path.startsWith('/upload/'))
  t.ok(uploads.length >= 2, 'start and chunk requests both came through the gateway')
  const fetched = await ai.files.get({ name: file.name! })
  t.equal(fetched.displayName, 'notes.txt')

  const tokens = new Set(stack.gemini.requests.map((request) => request.headers.authorization))
  t.same([...tokens], [`Bearer ${record!.accessToken}`], 'the upstream saw only the person\'s access token')
  t.ok(stack.gemini.requests.every((request) => request.apiKey === undefined), 'never the gateway key')
  t.ok(stack.gemini.requests.filter((request) => request.sub !== undefined).every((request) => request.sub === holder.sub), 'as the person')
})

t.test('usage from JSON answers and from the last SSE chunk is counted per person and model', async (t) => {
  const stack = await startProxyStack(t, { gemini: { chunkCount: 3, chunkDelayMs: 1 } })
  const holder = await signInWithKey(stack)
  const ai = new GoogleGenAI({ apiKey: holder.key, httpOptions: { baseUrl: stack.url } })

  await ai.models.generateContent({ model: MODEL, contents: 'count these four words' })
  for await (const _chunk of await ai.models.generateContentStream({ model: 'gemini-2.5-pro', contents: 'and these three' })) { /* drain */ }
  const usage = await usageOnceCounted(holder, 2)
  t.same(usage?.byModel[MODEL], { requests: 1, prompt: 4, candidates: 5, total: 9 })
  t.same(usage?.byModel['gemini-2.5-pro'], { requests: 1, prompt: 3, candidates: 4, total: 7 })
  t.same(usage?.totals, { requests: 2, prompt: 7, candidates: 9, total: 16 })

  const metrics = await (await fetch(`${stack.url}/metrics`)).text()
  t.match(metrics, /gemgate_gemini_tokens_total\{model="gemini-2.5-flash",kind="total"\} 9/)
  t.match(metrics, /gemgate_gemini_tokens_total\{model="gemini-2.5-pro",kind="prompt"\} 3/)

  const status = await (await holder.browser.fetch('/auth/status')).text()
  t.match(status, /gemini-2\.5-pro/, 'the status page shows usage by model')
})

t.test('usage is read from a gzip-compressed answer, which reaches the client compressed and intact', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const holder = await signInWithKey(stack)
  const answer = { candidates: [{ content: { role: 'model', parts: [{ text: 'zipped' }] } }], usageMetadata: { promptTokenCount: 11, candidatesTokenCount: 22, totalTokenCount: 33 } }
  stack.gemini.onNext((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8', 'content-encoding': 'gzip' })
    res.end(gzipSync(JSON.stringify(answer)))
  })
  const ai = new GoogleGenAI({ apiKey: holder.key, httpOptions: { baseUrl: stack.url } })
  const generated = await ai.models.generateContent({ model: MODEL, contents: 'compress' })
  t.equal(generated.text, 'zipped')
  t.same((await usageOnceCounted(holder, 1))?.totals, { requests: 1, prompt: 11, candidates: 22, total: 33 })
})

t.test('usage-spoofing: a usageMetadata key inside the model\'s own output is not what gets counted', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const holder = await signInWithKey(stack)
  // The real usage comes first here; the model's output (a function call's arguments) carries a
  // usageMetadata of its own later in the body, where a scan from the end would find it first.
  const spoofed = { usageMetadata: { promptTokenCount: 1, candidatesTokenCount: 1, totalTokenCount: 999_999 } }
  const answer = {
    usageMetadata: { promptTokenCount: 6, candidatesTokenCount: 7, totalTokenCount: 13 },
    candidates: [{ content: { role: 'model', parts: [{ functionCall: { name: 'report', args: spoofed } }] } }],
  }
  stack.gemini.onNext((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8' })
    res.end(JSON.stringify(answer))
  })
  const ai = new GoogleGenAI({ apiKey: holder.key, httpOptions: { baseUrl: stack.url } })
  const generated = await ai.models.generateContent({ model: MODEL, contents: 'spoof' })
  t.same(generated.functionCalls?.[0]?.args, spoofed, 'the client gets the answer untouched')
  t.same((await usageOnceCounted(holder, 1))?.totals, { requests: 1, prompt: 6, candidates: 7, total: 13 })
})

t.test('the access log line names the key a call used by its id, never the key itself', async (t) => {
  const logLines: string[] = []
  const stack = await startProxyStack(t, { memory: true, logLines })
  const holder = await signInWithKey(stack)
  const ai = new GoogleGenAI({ apiKey: holder.key, httpOptions: { baseUrl: stack.url } })
  await ai.models.generateContent({ model: MODEL, contents: 'which key?' })
  const lines = logLines.map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.msg === 'request' && typeof line.url === 'string' && line.url.includes(':generateContent'))
  t.equal(lines.length, 1, 'one line for the call', { lines })
  t.match(lines[0], { status: 200, person: String, keyId: holder.keyId })
  t.notOk(logLines.join('').includes(holder.key), 'the key never appears in the log')
  t.notOk(logLines.join('').includes(holder.key.slice(3)), 'nor its secret part')
})

t.test('a stale session cookie sent beside a valid key is cleared on the API answer', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const holder = await signInWithKey(stack)
  const response = await fetch(`${stack.url}/v1beta/models/${MODEL}:generateContent`, {
    method: 'POST',
    headers: { 'x-goog-api-key': holder.key, cookie: 'gemgate=forged.value', origin: stack.url, 'content-type': 'application/json' },
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
  })
  t.equal(response.status, 200, 'the key still answers for the person')
  await response.arrayBuffer()
  t.ok(response.headers.getSetCookie().some((line) => /^gemgate=;.*Expires=Thu, 01 Jan 1970/i.test(line)), 'and the bad cookie is cleared', { setCookie: response.headers.getSetCookie() })
})
