// The bench's fake Gemini: as cheap as an HTTP server can be, so the figures measure the
// proxies in front of it. It checks the Authorization header against one fixed token (never
// introspects), answers generateContent with a fixed body, and streams SSE chunks stamped with
// the wall-clock time they were written, so a client can tell what each chunk gained on the way.
// With BENCH_TLS_KEY and BENCH_TLS_CERT (PEM files) it speaks TLS and offers h2 by ALPN, as
// Google does (HTTP/1.1 still served to clients that do not ask for h2), announcing 100
// streams per connection like Google. It answers {type: 'connections'} with how many client
// connections it holds open right now (h2 sessions and HTTP/1.1 sockets alike).
// Plain JavaScript: no TypeScript loader in a measured process. Started by bench/run.ts.
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { createSecureServer } from 'node:http2'
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
/** The streams per connection Google's front end announces. */
const H2_STREAMS = 100

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

function handle (request, response) {
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
}

const tls = process.env.BENCH_TLS_KEY !== undefined && process.env.BENCH_TLS_CERT !== undefined
const server = tls
  ? createSecureServer({ key: readFileSync(process.env.BENCH_TLS_KEY), cert: readFileSync(process.env.BENCH_TLS_CERT), allowHTTP1: true, settings: { maxConcurrentStreams: H2_STREAMS } }, handle)
  : createServer(handle)
let open = 0
// With allowHTTP1 an HTTP/1.1 client's socket is a 'secureConnection' with no session: both are counted as connections.
server.on(tls ? 'secureConnection' : 'connection', (socket) => {
  open++
  socket.once('close', () => { open-- })
})
server.keepAliveTimeout = 120_000
if (!tls) server.headersTimeout = 130_000
server.maxConnections = 10_000
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
process.on('message', (message) => {
  if (message?.type === 'connections') process.send({ type: 'connections', open })
})
process.on('disconnect', () => process.exit(0))
