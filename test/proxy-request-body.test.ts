// How the proxy reads a request body (src/proxy/body.ts), over real sockets: whole with its
// headers, trickling in, chunked, and past the limit that keeps it for a retry.
import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { text } from 'node:stream/consumers'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { readRequestBody } from '../src/proxy/body.js'

const LIMIT = 64

/** What the server made of each request: the body's kind and bytes, and whether the request stream ended. */
interface Seen { kind: string, body: string, ended: boolean }

async function server (t: Test): Promise<{ port: number, seen: Seen[] }> {
  const seen: Seen[] = []
  const http = createServer((request: IncomingMessage, response) => {
    void (async () => {
      // As in the proxy, the body is read after a few awaits, once the parser is done with the packet.
      await Promise.resolve()
      const body = await readRequestBody(request, LIMIT)
      const bytes = body.kind === 'none' ? '' : body.kind === 'kept' ? body.bytes.toString() : await text(body.stream)
      // Nothing reads a request without a body: Node's server drains it.
      if (body.kind === 'none') request.resume()
      if (!request.readableEnded) await once(request, 'end')
      seen.push({ kind: body.kind, body: bytes, ended: request.readableEnded })
      response.end('ok')
    })()
  })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  t.teardown(() => { http.close() })
  return { port: (http.address() as AddressInfo).port, seen }
}

/** Writes `parts` one after another (a pause between them), and waits for `answers` responses. */
async function send (port: number, parts: string[], answers = 1): Promise<void> {
  const socket: Socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  let received = ''
  socket.on('data', (chunk: Buffer) => { received += chunk.toString() })
  for (const [index, part] of parts.entries()) {
    if (index > 0) await sleep(30)
    socket.write(part)
  }
  while ((received.match(/\r\n\r\nok/g) ?? []).length < answers) await once(socket, 'data')
  socket.destroy()
}

const post = (body: string, headers = `content-length: ${Buffer.byteLength(body)}`): string => `POST /v1beta/models/m:generateContent HTTP/1.1\r\nhost: x\r\n${headers}\r\n\r\n${body}`

t.test('a small body sent whole with its headers is kept, and the request ends', async (t) => {
  const { port, seen } = await server(t)
  const body = '{"contents":[{"parts":[{"text":"é"}]}]}'
  await send(port, [post(body) + post(body)], 2)
  t.same(seen, [{ kind: 'kept', body, ended: true }, { kind: 'kept', body, ended: true }], 'two calls on one keep-alive connection')
})

t.test('a small body that trickles in after its headers is kept whole', async (t) => {
  const { port, seen } = await server(t)
  const body = '{"contents":"trickled"}'
  const whole = post(body)
  await send(port, [whole.slice(0, whole.length - body.length), body.slice(0, 5), body.slice(5)])
  t.same(seen, [{ kind: 'kept', body, ended: true }])
})

t.test('a chunked body within the limit is kept, whether it came whole or in pieces', async (t) => {
  const { port, seen } = await server(t)
  const chunked = 'transfer-encoding: chunked'
  await send(port, [post('5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n', chunked)])
  await send(port, [post('5\r\nhello\r\n', chunked), '6\r\n world\r\n', '0\r\n\r\n'])
  t.same(seen, [{ kind: 'kept', body: 'hello world', ended: true }, { kind: 'kept', body: 'hello world', ended: true }])
})

t.test('a body past the limit is streamed, every byte, whether it was declared or came whole without a length', async (t) => {
  const { port, seen } = await server(t)
  const large = 'x'.repeat(LIMIT * 3)
  await send(port, [post(large)])
  const hex = large.length.toString(16)
  await send(port, [post(`${hex}\r\n${large}\r\n0\r\n\r\n`, 'transfer-encoding: chunked')])
  await send(port, [post(`${hex}\r\n${large.slice(0, 10)}`, 'transfer-encoding: chunked'), `${large.slice(10)}\r\n0\r\n\r\n`])
  t.same(seen.map(({ kind, body }) => ({ kind, length: body.length })), [1, 2, 3].map(() => ({ kind: 'streamed', length: large.length })))
})

t.test('no body: none', async (t) => {
  const { port, seen } = await server(t)
  await send(port, [post('')])
  t.same(seen, [{ kind: 'none', body: '', ended: true }])
})
