// The bench's fake Gemini: as cheap as an HTTP server can be, so the figures measure the
// proxies in front of it. It checks the Authorization header against one fixed token (never
// introspects), answers generateContent with a fixed body, and streams SSE chunks stamped with
// the wall-clock time they were written, so a client can tell what each chunk gained on the way.
// Plain JavaScript: no TypeScript loader in a measured process. Started by bench/run.ts.
import { createServer } from 'node:http'
import { performance } from 'node:perf_hooks'

const EXPECTED = `Bearer ${process.env.BENCH_TOKEN}`
// Gemini also takes the key as ?key=: the Portkey baseline sends it so.
const EXPECTED_KEY = `key=${encodeURIComponent(process.env.BENCH_TOKEN)}`
const ANSWER = JSON.stringify({
  candidates: [{ content: { role: 'model', parts: [{ text: 'The quick brown fox jumps over the lazy dog. '.repeat(8) }] }, finishReason: 'STOP', index: 0 }],
  usageMetadata: { promptTokenCount: 12, candidatesTokenCount: 96, totalTokenCount: 108 },
  modelVersion: 'gemini-3.8-flash-001',
  responseId: 'bench-response',
})
const JSON_HEADERS = { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(ANSWER), vary: 'Origin, X-Origin, Referer' }
const REFUSED = JSON.stringify({ error: { code: 401, message: 'bad token', status: 'UNAUTHENTICATED' } })

const now = () => performance.timeOrigin + performance.now()

function stream (request, response, query) {
  const chunks = Number(query.get('chunks') ?? 10)
  const intervalMs = Number(query.get('interval') ?? 20)
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  let sent = 0
  const write = () => {
    const last = ++sent >= chunks
    const usage = last ? ',"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":96,"totalTokenCount":108}' : ''
    response.write(`data: {"i":${sent},"t":${now()},"candidates":[{"content":{"parts":[{"text":"chunk ${sent}"}]}}]${usage}}\r\n\r\n`)
    if (last) response.end()
    else timer = setTimeout(write, intervalMs)
  }
  let timer = setTimeout(write, 0)
  response.on('close', () => clearTimeout(timer))
}

const server = createServer((request, response) => {
  request.resume()
  if (request.headers.authorization !== EXPECTED && !request.url.includes(EXPECTED_KEY)) {
    response.writeHead(401, { 'content-type': 'application/json' })
    response.end(REFUSED)
    return
  }
  const at = request.url.indexOf('?')
  if (request.url.includes(':streamGenerateContent')) {
    stream(request, response, new URLSearchParams(at === -1 ? '' : request.url.slice(at + 1)))
    return
  }
  request.on('end', () => {
    response.writeHead(200, JSON_HEADERS)
    response.end(ANSWER)
  })
})
server.keepAliveTimeout = 120_000
server.headersTimeout = 130_000
server.maxConnections = 10_000
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
process.on('disconnect', () => process.exit(0))
