// Model calls without a cookie or Origin skip Fastify's routing and hooks (src/proxy/fast-path.ts).
// What a client, an operator's logs and Prometheus see must not tell the two paths apart.
import t from 'tap'
import { personWithKey, startProxyStack } from './helpers/person.js'

const GENERATE = '/v1beta/models/gemini-2.5-flash:generateContent'
const BODY = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] })

interface AccessLine { msg: string, requestId: string, route: string | null, status: number, person: string | null, keyId: string | null, error: string | null, durationMs: number, url: string }

function accessLines (lines: string[]): AccessLine[] {
  return lines.map((line) => JSON.parse(line) as AccessLine).filter((line) => line.msg === 'request')
}

async function counted (url: string, status: number): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const line = text.split('\n').find((row) => row.startsWith(`gemgate_http_requests_total{method="POST",route="/v1beta/*",status="${status}"}`))
  return line === undefined ? 0 : Number(line.split(' ').at(-1))
}

t.test('a model call with a key: the same headers, access line and metrics as on the Fastify route', async (t) => {
  const logLines: string[] = []
  const stack = await startProxyStack(t, { memory: true, logLines })
  t.ok(stack.app.fastPath.take, 'the fast path is on')
  const holder = await personWithKey(stack)
  for (const attempt of [1, 2]) {
    const response = await fetch(`${stack.url}${GENERATE}?alt=json`, { method: 'POST', headers: { 'x-goog-api-key': holder.key, 'x-request-id': `fast-${attempt}` }, body: BODY })
    t.equal(response.status, 200)
    t.equal(response.headers.get('x-request-id'), `fast-${attempt}`)
    t.match(response.headers.get('vary'), /^Origin\b/, 'Vary: Origin, as the CORS hook sets')
    t.equal(response.headers.get('vary'), 'Origin, X-Origin, Referer', 'the upstream\'s Vary fields after it, Origin named once')
    await response.json()
  }
  const lines = accessLines(logLines).filter((line) => line.requestId.startsWith('fast-'))
  t.equal(lines.length, 2)
  for (const line of lines) {
    t.match(line, { route: '/v1beta/*', status: 200, person: 'alice@example.com', keyId: holder.keyId, error: null, url: `${GENERATE}?alt=json` })
    t.ok(line.durationMs >= 0)
  }
  t.equal(await counted(stack.url, 200), 2, 'both calls counted under the route pattern')
})

t.test('an error before the answer is handed to Fastify: Google\'s shape, the same request id, its error code in the access line', async (t) => {
  const logLines: string[] = []
  const stack = await startProxyStack(t, { memory: true, logLines })
  const holder = await personWithKey(stack)
  await stack.gemini.stop()
  const response = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key, 'x-request-id': 'fast-502' }, body: BODY })
  t.equal(response.status, 502)
  t.equal(response.headers.get('x-request-id'), 'fast-502')
  t.match(await response.json(), { error: { code: 502, status: 'UNAVAILABLE', message: /request id fast-502/ } })
  const [line] = accessLines(logLines).filter((entry) => entry.requestId === 'fast-502')
  t.match(line, { route: '/v1beta/*', status: 502, person: 'alice@example.com', keyId: holder.keyId, error: 'GEMGATE_BAD_GATEWAY' })
  t.equal(await counted(stack.url, 502), 1)
  await stack.gemini.start()
})

t.test('a browser asking for HTML still gets the error page; a call without a credential still gets 401', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const page = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { accept: 'text/html', 'x-goog-api-key': 'gk_not-a-real-key' }, body: BODY })
  t.equal(page.status, 401)
  t.match(page.headers.get('content-type'), /^text\/html/)
  const anonymous = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', body: BODY })
  t.equal(anonymous.status, 401)
  t.match(await anonymous.json(), { error: { status: 'UNAUTHENTICATED' } })
})

t.test('a client that hangs up mid-stream gets an access line with 499 (nginx\'s "client closed request") and is counted, on both paths', async (t) => {
  const logLines: string[] = []
  const stack = await startProxyStack(t, { memory: true, logLines, gemini: { chunkCount: 4, chunkDelayMs: 300 } })
  const holder = await personWithKey(stack)
  // No Origin: the fast path; an Origin: Fastify's route and hooks.
  for (const [path, origin] of [['fast', {}], ['fastify', { origin: 'https://elsewhere.example' }]] as const) {
    const abort = new AbortController()
    const response = await fetch(`${stack.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse`, {
      method: 'POST', signal: abort.signal, body: BODY,
      headers: { 'x-goog-api-key': holder.key, 'x-request-id': `gone-${path}`, 'content-type': 'application/json', ...origin },
    })
    await response.body!.getReader().read()
    const aborted = stack.gemini.nextAbort()
    abort.abort()
    await aborted
  }
  for (let attempt = 0; attempt < 100 && accessLines(logLines).filter((line) => line.requestId.startsWith('gone-')).length < 2; attempt++) await new Promise((resolve) => setTimeout(resolve, 20))
  const lines = accessLines(logLines).filter((line) => line.requestId.startsWith('gone-'))
  t.match(lines, [{ requestId: 'gone-fast', status: 499, route: '/v1beta/*', person: 'alice@example.com' }, { requestId: 'gone-fastify', status: 499, route: '/v1beta/*', person: 'alice@example.com' }])
  t.equal(await counted(stack.url, 499), 2, 'both counted as 499')
})
