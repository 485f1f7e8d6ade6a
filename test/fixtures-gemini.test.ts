import { request as httpsRequest } from 'node:https'
import { ApiError, GoogleGenAI, type GoogleGenAIOptions } from '@google/genai'
import t, { type Test } from 'tap'
import { selfSignedCert, startFakeGemini, type StartFakeGeminiOptions } from './fixtures/gemini.js'
import { startProvider } from './fixtures/oidc.js'

const MODEL = 'gemini-2.5-flash'
const SCOPE = 'openid email profile https://www.googleapis.com/auth/generative-language.retriever'

async function setup(t: Test, options: Omit<StartFakeGeminiOptions, 'provider'> = {}) {
  const provider = await startProvider(t)
  const fake = await startFakeGemini(t, { provider, ...options })
  const tokens = await provider.issueTokens({ scope: SCOPE })
  return { provider, fake, token: tokens.access_token, refreshToken: tokens.refresh_token ?? '' }
}

// The SDK sends x-goog-api-key whenever apiKey is set, so a bearer-only caller
// (what the gateway is to Google) goes through googleAuthOptions instead.
// SDK 3.x defaults to apiVersion 'v1', not 'v1beta'.
function sdkWithToken(baseUrl: string, token: string, apiVersion?: string): GoogleGenAI {
  const authClient = { getRequestHeaders: async () => new Headers({ authorization: `Bearer ${token}` }) }
  return new GoogleGenAI({
    googleAuthOptions: { authClient } as unknown as GoogleGenAIOptions['googleAuthOptions'],
    httpOptions: { baseUrl, ...(apiVersion === undefined ? {} : { apiVersion }) },
  })
}

function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
}

const hello = { contents: [{ role: 'user', parts: [{ text: 'hello fixture' }] }] }

t.test('a valid token gets an answer that echoes the prompt, through the real SDK', async (t) => {
  const { fake, token } = await setup(t)
  const ai = sdkWithToken(fake.url, token)
  const response = await ai.models.generateContent({ model: MODEL, contents: 'hello fixture' })
  t.match(response.text, /hello fixture/)
  t.match(response.usageMetadata, { promptTokenCount: 2, totalTokenCount: Number })
  t.equal(response.modelVersion, MODEL)
  t.match(fake.requests, [{
    method: 'POST',
    path: `/v1/models/${MODEL}:generateContent`,
    token,
    sub: 'alice',
    apiKey: undefined,
    body: { contents: [{ role: 'user', parts: [{ text: 'hello fixture' }] }] },
  }])
})

t.test('bad, missing, revoked and refresh tokens get 401 UNAUTHENTICATED', async (t) => {
  const { provider, fake, token, refreshToken } = await setup(t)
  const error = await sdkWithToken(fake.url, 'not-a-token').models.generateContent({ model: MODEL, contents: 'x' })
    .catch((e: unknown) => e)
  t.ok(error instanceof ApiError)
  t.equal((error as ApiError).status, 401)
  t.match((error as ApiError).message, /UNAUTHENTICATED/)

  const url = `${fake.url}/v1beta/models/${MODEL}:generateContent`
  const missing = await post(url, hello)
  t.equal(missing.status, 401)
  t.match(await missing.json(), { error: { code: 401, status: 'UNAUTHENTICATED', message: /missing required authentication/ } })
  t.match(missing.headers.get('www-authenticate'), /^Bearer /)

  const asRefresh = await post(url, hello, { authorization: `Bearer ${refreshToken}` })
  t.equal(asRefresh.status, 401, 'a refresh token is not an access token')

  t.equal((await post(url, hello, { authorization: `Bearer ${token}` })).status, 200)
  await provider.revoke(token)
  const revoked = await post(url, hello, { authorization: `Bearer ${token}` })
  t.equal(revoked.status, 401)
  t.match(await revoked.json(), { error: { code: 401, status: 'UNAUTHENTICATED', message: /invalid authentication credentials/ } })
})

t.test('an API key that is not a real Google key is refused like Google does', async (t) => {
  const { fake, token } = await setup(t, { validApiKeys: ['AIzaFixtureKey'] })
  const ai = new GoogleGenAI({ apiKey: 'gk_not_google', httpOptions: { baseUrl: fake.url, headers: { Authorization: `Bearer ${token}` } } })
  const error = await ai.models.generateContent({ model: MODEL, contents: 'x' }).catch((e: unknown) => e)
  t.equal((error as ApiError).status, 400)
  t.match((error as ApiError).message, /API_KEY_INVALID/)
  t.match(fake.requests[0], { apiKey: 'gk_not_google', token }, 'the SDK sent both the key and the bearer token')

  const viaQuery = await fetch(`${fake.url}/v1beta/models?key=bogus`)
  t.equal(viaQuery.status, 400)
  t.match(await viaQuery.json(), { error: { status: 'INVALID_ARGUMENT', details: [{ reason: 'API_KEY_INVALID' }] } })
  t.equal((await fetch(`${fake.url}/v1beta/models?key=AIzaFixtureKey`)).status, 200, 'a configured key works alone')
})

t.test('streamGenerateContent sends SSE chunks one at a time, usage on the last', async (t) => {
  const { fake, token } = await setup(t, { chunkDelayMs: 200 })
  const response = await post(`${fake.url}/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`, hello, { authorization: `Bearer ${token}` })
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type'), /^text\/event-stream/)
  const reader = (response.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  const reads: string[] = []
  for (let read = await reader.read(); !read.done; read = await reader.read()) reads.push(decoder.decode(read.value))

  const events = reads.join('').split('\r\n\r\n').filter(Boolean)
  t.equal(events.length, 4)
  t.ok(events.every((event) => event.startsWith('data: ')), 'each event is "data: {json}" ended by CRLF CRLF')
  t.ok(reads.length >= 2, 'the chunks arrived in separate reads')
  t.notMatch(reads[0], /finishReason/, 'the first read came before the last chunk was written')
  const chunks = events.map((event) => JSON.parse(event.slice('data: '.length)) as Record<string, any>)
  t.equal(chunks.map((chunk) => chunk.candidates[0].content.parts[0].text).join(''), 'Echo: hello fixture')
  t.match(chunks.at(-1), {
    candidates: [{ finishReason: 'STOP' }],
    usageMetadata: { promptTokenCount: 2, candidatesTokenCount: 3, totalTokenCount: 5 },
    modelVersion: MODEL,
  })
  t.notOk(chunks[0]?.candidates[0].finishReason)
})

t.test('the SDK streams, counts tokens, embeds and reads models', async (t) => {
  const { fake, token } = await setup(t, { chunkDelayMs: 5, chunkCount: 3 })
  const ai = sdkWithToken(fake.url, token, 'v1beta')
  const texts: string[] = []
  for await (const chunk of await ai.models.generateContentStream({ model: MODEL, contents: 'stream me' })) {
    texts.push(chunk.text ?? '')
  }
  t.equal(texts.length, 3)
  t.equal(texts.join(''), 'Echo: stream me')

  t.match(await ai.models.countTokens({ model: MODEL, contents: 'one two three' }), { totalTokens: 3 })

  const embedded = await ai.models.embedContent({ model: 'gemini-embedding-001', contents: ['a', 'b'] })
  t.equal(embedded.embeddings?.length, 2)
  t.equal(embedded.embeddings?.[0]?.values?.length, 8)
  t.match(fake.requests.at(-1), { path: '/v1beta/models/gemini-embedding-001:batchEmbedContents' }, 'the SDK batches embeddings')
  t.match(fake.requests.at(-1)?.body, { requests: [{ model: 'models/gemini-embedding-001', content: { parts: [{ text: 'a' }] } }] })

  t.match(await ai.models.get({ model: MODEL }), { name: `models/${MODEL}` })
  const listed: string[] = []
  for await (const model of await ai.models.list()) listed.push(model.name ?? '')
  t.ok(listed.includes(`models/${MODEL}`))
  const missing = await ai.models.get({ model: 'no-such-model' }).catch((e: unknown) => e)
  t.equal((missing as ApiError).status, 404)
})

t.test('raw embedContent, countTokens, /v1 and unknown paths', async (t) => {
  const { fake, token } = await setup(t)
  const auth = { authorization: `Bearer ${token}` }
  const single = await post(`${fake.url}/v1beta/models/text-embedding-004:embedContent`, { content: { parts: [{ text: 'a' }] } }, auth)
  const { embedding } = await single.json() as { embedding: { values: number[] } }
  t.equal(embedding.values.length, 8)
  const again = await post(`${fake.url}/v1/models/text-embedding-004:embedContent`, { content: { parts: [{ text: 'a' }] } }, auth)
  t.same(await again.json(), { embedding }, 'deterministic, and served under /v1 too')

  const array = await post(`${fake.url}/v1beta/models/${MODEL}:streamGenerateContent`, hello, auth)
  t.match(array.headers.get('content-type'), /^application\/json/, 'without alt=sse the stream is one JSON array')
  t.equal((await array.json() as unknown[]).length, 4)

  const unknown = await fetch(`${fake.url}/v1beta/nothing/here`, { headers: auth })
  t.equal(unknown.status, 404)
  t.match(await unknown.json(), { error: { code: 404, status: 'NOT_FOUND' } })
  const badJson = await fetch(`${fake.url}/v1beta/models/${MODEL}:generateContent`, { method: 'POST', headers: auth, body: '{' })
  t.equal(badJson.status, 400)
})

t.test('ai.files.upload speaks the resumable protocol and the file can be used', async (t) => {
  const { fake, token } = await setup(t)
  const ai = sdkWithToken(fake.url, token, 'v1beta')
  const file = await ai.files.upload({ file: new Blob(['hello file']), config: { mimeType: 'text/plain', displayName: 'greeting' } })
  t.match(file, { state: 'ACTIVE', sizeBytes: '10', mimeType: 'text/plain', displayName: 'greeting', name: /^files\// })
  t.equal(fake.files.get(file.name ?? '')?.content.toString(), 'hello file')

  const [start, chunk] = fake.requests
  t.match(start, {
    path: '/upload/v1beta/files',
    token,
    headers: {
      'x-goog-upload-protocol': 'resumable',
      'x-goog-upload-command': 'start',
      'x-goog-upload-header-content-length': '10',
      'x-goog-upload-header-content-type': 'text/plain',
    },
    body: { file: { mimeType: 'text/plain', displayName: 'greeting', sizeBytes: '10' } },
  })
  t.match(chunk, {
    path: '/upload/v1beta/files',
    query: { upload_id: String, upload_protocol: 'resumable' },
    token,
    headers: { 'x-goog-upload-command': 'upload, finalize', 'x-goog-upload-offset': '0' },
  })
  t.equal(chunk?.rawBody.toString(), 'hello file')

  t.match(await ai.files.get({ name: file.name ?? '' }), { name: file.name, uri: file.uri })
  const response = await ai.models.generateContent({
    model: MODEL,
    contents: [{ role: 'user', parts: [{ text: 'describe' }, { fileData: { fileUri: file.uri ?? '', mimeType: 'text/plain' } }] }],
  })
  t.match(response.text, file.uri ?? 'no uri')
})

t.test('the upload URL points at the fake, and chunks must follow the offset', async (t) => {
  const { fake, token } = await setup(t)
  const auth = { authorization: `Bearer ${token}` }
  const start = await post(`${fake.url}/upload/v1beta/files`, { file: { displayName: 'two' } }, {
    ...auth,
    'x-goog-upload-protocol': 'resumable',
    'x-goog-upload-command': 'start',
    'x-goog-upload-header-content-length': '6',
    'x-goog-upload-header-content-type': 'text/plain',
  })
  t.equal(start.headers.get('x-goog-upload-status'), 'active')
  const uploadUrl = start.headers.get('x-goog-upload-url') ?? ''
  t.match(uploadUrl, `${fake.url}/upload/v1beta/files?upload_id=`)
  const send = (command: string, offset: number, body: string) =>
    fetch(uploadUrl, { method: 'POST', headers: { ...auth, 'x-goog-upload-command': command, 'x-goog-upload-offset': String(offset) }, body })

  const first = await send('upload', 0, 'abc')
  t.equal(first.headers.get('x-goog-upload-status'), 'active')
  t.equal((await send('upload', 1, 'zzz')).status, 400, 'a wrong offset is refused')
  const last = await send('upload, finalize', 3, 'def')
  t.equal(last.headers.get('x-goog-upload-status'), 'final')
  const { file } = await last.json() as { file: { name: string; sizeBytes: string } }
  t.equal(file.sizeBytes, '6')
  t.equal(fake.files.get(file.name)?.content.toString(), 'abcdef')
})

t.test('faults: set-cookie once, 401 once, status, delay', async (t) => {
  const { fake, token } = await setup(t)
  const models = () => fetch(`${fake.url}/v1beta/models`, { headers: { authorization: `Bearer ${token}` } })

  fake.fault({ kind: 'set-cookie' })
  t.match((await models()).headers.getSetCookie(), [/^NID=/])
  t.same((await models()).headers.getSetCookie(), [], 'only once')

  fake.fault({ kind: 'unauthorized' })
  const refused = await models()
  t.equal(refused.status, 401)
  t.match(await refused.json(), { error: { status: 'UNAUTHENTICATED' } })
  t.equal((await models()).status, 200, 'the same token works again')

  fake.fault({ kind: 'status', code: 503 }, { times: 2, match: (request) => request.path.endsWith('/models') })
  t.equal((await models()).status, 503)
  t.match(await (await models()).json(), { error: { code: 503, status: 'UNAVAILABLE' } })
  fake.fault({ kind: 'delay', ms: 20 })
  t.equal((await models()).status, 200)
  t.match(fake.requests.map((request) => request.fault), [
    'set-cookie', undefined, 'unauthorized', undefined, 'status', 'status', 'delay',
  ])

  fake.clear()
  t.same(fake.requests, [])
})

t.test('faults: reset, hang and client aborts reach the fake', async (t) => {
  const { fake, token } = await setup(t)
  const auth = { authorization: `Bearer ${token}` }

  fake.fault({ kind: 'reset' })
  await t.rejects(fetch(`${fake.url}/v1beta/models`, { headers: auth }), 'the connection is reset')
  t.equal(fake.aborted, 0, 'a reset by the fake is not a client abort')

  fake.fault({ kind: 'hang' })
  const controller = new AbortController()
  const hung = fetch(`${fake.url}/v1beta/models`, { headers: auth, signal: controller.signal })
  const abortSeen = fake.nextAbort()
  while (fake.requests.length < 2) await new Promise((resolve) => setImmediate(resolve))
  controller.abort()
  await t.rejects(hung)
  t.match(await abortSeen, { path: '/v1beta/models', aborted: true })
  t.equal(fake.aborted, 1)

  // Stalling after one chunk keeps the stream open however slowly this test runs.
  fake.fault({ kind: 'hang', afterChunks: 1 })
  const response = await post(`${fake.url}/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`, hello, auth)
  t.equal(response.status, 200)
  const midStream = fake.nextAbort()
  const reader = (response.body as ReadableStream<Uint8Array>).getReader()
  t.notOk((await reader.read()).done, 'the first chunk arrived')
  await reader.cancel()
  t.match(await midStream, { path: `/v1beta/models/${MODEL}:streamGenerateContent`, aborted: true })
  t.equal(fake.aborted, 2)
})

t.test('faults: a stream can break or stall after some chunks; onNext answers instead', async (t) => {
  const { fake, token } = await setup(t, { chunkDelayMs: 5 })
  const auth = { authorization: `Bearer ${token}` }
  const streamUrl = `${fake.url}/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`

  fake.fault({ kind: 'reset', afterChunks: 1 })
  const broken = await post(streamUrl, hello, auth)
  await t.rejects(broken.text(), 'the body ends with a reset')

  fake.fault({ kind: 'hang', afterChunks: 2 })
  const stalled = await post(streamUrl, hello, auth)
  const reader = (stalled.body as ReadableStream<Uint8Array>).getReader()
  let received = ''
  while (received.split('\r\n\r\n').length < 3) received += new TextDecoder().decode((await reader.read()).value)
  t.equal(received.split('\r\n\r\n').filter(Boolean).length, 2, 'two chunks, then silence')
  await reader.cancel()

  fake.onNext((_req, res) => {
    res.writeHead(418, { 'content-type': 'text/plain' })
    res.end('custom')
  })
  const custom = await fetch(`${fake.url}/v1beta/models`)
  t.equal(custom.status, 418)
  t.equal(await custom.text(), 'custom')
})

t.test('requiredScope refuses tokens without it with 403', async (t) => {
  const provider = await startProvider(t)
  const fake = await startFakeGemini(t, { provider, requiredScope: 'https://www.googleapis.com/auth/generative-language.retriever' })
  const narrow = await provider.issueTokens({ scope: 'openid email' })
  const wide = await provider.issueTokens({ scope: SCOPE })
  const refused = await fetch(`${fake.url}/v1beta/models`, { headers: { authorization: `Bearer ${narrow.access_token}` } })
  t.equal(refused.status, 403)
  t.match(await refused.json(), { error: { status: 'PERMISSION_DENIED', details: [{ reason: 'ACCESS_TOKEN_SCOPE_INSUFFICIENT' }] } })
  t.equal((await fetch(`${fake.url}/v1beta/models`, { headers: { authorization: `Bearer ${wide.access_token}` } })).status, 200)
})

t.test('a stub introspector works, and TLS serves https with a self-signed certificate', async (t) => {
  const cert = await selfSignedCert(t)
  const fake = await startFakeGemini(t, {
    provider: { introspect: async (token) => ({ active: token === 'good', sub: 'stub' }) },
    tls: { key: cert.key, cert: cert.cert },
  })
  t.match(fake.url, /^https:\/\/127\.0\.0\.1:\d+$/)
  const get = (token: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpsRequest(`${fake.url}/v1beta/models/${MODEL}`, { ca: cert.cert, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let body = ''
      res.on('data', (data: Buffer) => { body += data.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
  const ok = await get('good')
  t.equal(ok.status, 200)
  t.match(JSON.parse(ok.body), { name: `models/${MODEL}` })
  t.equal((await get('bad')).status, 401)
  t.match(fake.requests[0], { sub: 'stub' })
})

t.test('stop() and start() take the fake offline and back', async (t) => {
  const { fake, token } = await setup(t)
  await fake.stop()
  await t.rejects(fetch(`${fake.url}/v1beta/models`, { headers: { authorization: `Bearer ${token}` } }))
  await fake.start()
  t.equal((await fetch(`${fake.url}/v1beta/models`, { headers: { authorization: `Bearer ${token}` } })).status, 200)
})
