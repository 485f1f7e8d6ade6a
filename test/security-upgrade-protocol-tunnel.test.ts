import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import t, { type Test } from 'tap'
import { startProxyStack } from './helpers/person.js'
import { rawRequest } from './helpers/raw-http.js'

// Issue 12, item 6: any Upgrade protocol was tunnelled. `Upgrade: h2c` on a public path got a
// 101 from a lenient app and then a raw HTTP/2 tunnel to its private paths, past the gateway.
// Only `Upgrade: websocket` on GET is forwarded, and a 101 that does not echo it is refused.

const WEBSOCKET = { connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' }

/** An app that switches to whatever protocol it is asked for (or h2c on /public/h2c), then writes a marker. */
async function lenientApp (t: Test): Promise<{ url: string, handshakes: IncomingMessage[] }> {
  const handshakes: IncomingMessage[] = []
  const server = createServer((_request, response) => { response.end('plain answer') })
  server.on('upgrade', (request: IncomingMessage, socket: Socket) => {
    handshakes.push(request)
    const protocol = request.url === '/public/h2c' ? 'h2c' : request.headers.upgrade ?? 'none'
    socket.end(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${protocol}\r\n\r\nTUNNEL OPEN`)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, handshakes }
}

t.test('only a GET asking for websocket is relayed, and only a 101 that switches to websocket', async (t) => {
  const app = await lenientApp(t)
  const stack = await startProxyStack(t, { env: { APP_UPSTREAM_URL: app.url, APP_PUBLIC_PATHS: '/public/' } })
  const refused: Array<[string, string, Record<string, string>]> = [
    ['GET', '/public/a', { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAARAAAAAAAIAAAAA' }],
    ['GET', '/public/b', { ...WEBSOCKET, upgrade: 'websocket, h2c' }],
    ['GET', '/public/c', { ...WEBSOCKET, upgrade: 'TLS/1.2' }],
    ['POST', '/public/d', { ...WEBSOCKET, upgrade: 'websocket', 'content-length': '0' }],
    ['PUT', '/public/e', { ...WEBSOCKET, upgrade: 'websocket' }],
  ]
  for (const [method, path, headers] of refused) {
    const answer = await rawRequest(stack.url, method, path, headers)
    t.equal(answer.status, 400, `${method} ${path} Upgrade: ${headers.upgrade} is refused`)
    t.notMatch(answer.body, /TUNNEL OPEN/)
  }
  t.same(app.handshakes.map((request) => request.url), [], 'none of them reached the app')

  const switched = await rawRequest(stack.url, 'GET', '/public/h2c', { ...WEBSOCKET, upgrade: 'websocket' })
  t.equal(switched.status, 502, 'a 101 to another protocol is not passed on')
  t.notMatch(switched.body, /TUNNEL OPEN/)

  const websocket = await rawRequest(stack.url, 'GET', '/public/ws', { ...WEBSOCKET, upgrade: 'WebSocket' })
  t.equal(websocket.status, 101, 'a WebSocket handshake still goes through')
  t.match(websocket.body, /TUNNEL OPEN/)
})
