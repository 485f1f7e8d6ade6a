import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import t, { type Test } from 'tap'
import { startNginx } from './fixtures/nginx.js'
import { startProxyStack } from './helpers/person.js'
import { rawRequest, type RawResponse } from './helpers/raw-http.js'

// Issue 12, item 1: a WebSocket handshake to a public path carrying `Content-Length: N` and no
// body went to the app on a pooled keep-alive connection; after the app's non-101 answer the
// connection went back to the pool with the app waiting for N body bytes, so the next
// handshake's first N bytes were eaten and a header value the attacker chose became a request
// line: an unauthenticated client read a private page of an app that trusts the gateway.

const HANDSHAKE = { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' }
const SMUGGLED_LINE = 'GET /private/secret HTTP/1.1'

/** A request the app saw, and on which of its connections. */
interface Seen { url: string, headers: IncomingMessage['headers'], connection: number }

/** An app that trusts the gateway: it serves /private/* to anyone the gateway lets through, and has no WebSocket support. */
async function trustingNodeApp (t: Test): Promise<{ url: string, seen: Seen[], closed: () => number }> {
  const seen: Seen[] = []
  const ids = new WeakMap<Socket, number>()
  let connections = 0
  let closed = 0
  const server = createServer((request, response) => {
    seen.push({ url: request.url ?? '', headers: request.headers, connection: ids.get(request.socket)! })
    request.resume()
    response.end(request.url?.startsWith('/private/') === true ? 'PRIVATE PAGE' : 'public page')
  })
  server.on('connection', (socket: Socket) => {
    ids.set(socket, ++connections)
    socket.once('close', () => { closed++ })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, closed: () => closed }
}

/**
 * The attack: a handshake that announces N body bytes it never sends, then one whose first N
 * bytes on the wire to the app end right where `x-smuggle:`'s value, a request line, starts.
 */
async function smuggle (gatewayUrl: string): Promise<RawResponse[]> {
  const bytesBeforeValue = Buffer.byteLength('GET /public/b HTTP/1.1\r\nx-smuggle: ')
  const first = await rawRequest(gatewayUrl, 'GET', '/public/a', { ...HANDSHAKE, 'content-length': String(bytesBeforeValue) })
  const second = await rawRequest(gatewayUrl, 'GET', '/public/b', { 'x-smuggle': SMUGGLED_LINE, ...HANDSHAKE })
  return [first, second]
}

t.test('a Node app: a handshake never carries a body or body framing, and never shares a connection', async (t) => {
  const app = await trustingNodeApp(t)
  const stack = await startProxyStack(t, { env: { APP_UPSTREAM_URL: app.url, APP_PUBLIC_PATHS: '/public/' } })
  const answers = await smuggle(stack.url)
  t.notMatch(answers.map((answer) => answer.body).join('\n'), /PRIVATE/, 'no private page reaches a signed-out client')
  t.same(app.seen.filter((request) => !request.url.startsWith('/public/')), [], 'the app never saw a request the gateway did not authorise')
  for (const request of app.seen) {
    t.equal(request.headers['content-length'], undefined, `${request.url}: no Content-Length`)
    t.equal(request.headers['transfer-encoding'], undefined, `${request.url}: no Transfer-Encoding`)
  }

  const chunked = await rawRequest(stack.url, 'GET', '/public/c', { ...HANDSHAKE, 'transfer-encoding': 'chunked' })
  t.equal(chunked.status, 400, 'a handshake announcing a chunked body is refused')
  t.equal(answers[0]!.status, 400, 'a handshake announcing a body is refused')

  // Two plain handshakes the app answers without switching protocols: each on a connection of its own, closed after.
  const before = app.seen.length
  for (const path of ['/public/d', '/public/e']) t.equal((await rawRequest(stack.url, 'GET', path, HANDSHAKE)).status, 200)
  const [d, e] = app.seen.slice(before)
  t.not(d!.connection, e!.connection, 'no handshake reuses another\'s connection')
  for (let waited = 0; app.closed() < 2 && waited < 2_000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10))
  t.ok(app.closed() >= 2, 'the gateway closed its connection to the app after a non-101 answer')
})

t.test('nginx as the app: the smuggled request never reaches it', async (t) => {
  const nginx = await startNginx(t, (port) => `
  server {
    listen 127.0.0.1:${port};
    keepalive_timeout 60s;
    location /public/ { return 200 "public page\\n"; }
    location / { return 200 "PRIVATE PAGE\\n"; }
  }`)
  const stack = await startProxyStack(t, { env: { APP_UPSTREAM_URL: nginx.url, APP_PUBLIC_PATHS: '/public/' } })
  const answers = await smuggle(stack.url)
  t.notMatch(answers.map((answer) => answer.body).join('\n'), /PRIVATE/, 'no private page reaches a signed-out client')
  const plain = await rawRequest(stack.url, 'GET', '/public/x', HANDSHAKE)
  t.equal(plain.status, 200, 'a handshake nginx answers without switching protocols is passed on')
  t.match(plain.body, /public page/)
})
