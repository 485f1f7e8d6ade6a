import { createHash } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import WebSocket from 'ws'
import { downloadBytes, type EchoedRequest } from './fixtures/echo-app.js'
import { headerValue, startSidecarStack } from './helpers/sidecar.js'

/** Opens a WebSocket and resolves with it and its first message, or with the HTTP status that refused it. */
async function openSocket (url: string, headers: Record<string, string> = {}): Promise<{ socket: WebSocket, hello: { request: EchoedRequest } } | { status: number, body: string }> {
  // As a page of the gateway's own origin would: cookie-authenticated handshakes need it.
  const socket = new WebSocket(url, { headers, origin: new URL(url.replace(/^ws/, 'http')).origin })
  return await new Promise((resolve, reject) => {
    socket.once('message', (data) => resolve({ socket, hello: JSON.parse(String(data)) }))
    socket.once('unexpected-response', (_request, response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { body += chunk })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }))
    })
    socket.once('error', reject)
  })
}

t.test('SSE from the app reaches the browser event by event', async (t) => {
  const stack = await startSidecarStack(t, { echo: { sseEvents: 3 } })
  const { browser } = await stack.signIn()
  const response = await browser.fetch('/sse', { headers: { accept: 'text/event-stream' } })
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type'), /^text\/event-stream/)
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  const writtenWhenSeen: number[] = []
  let text = ''
  for (let event = 0; event < 3; event++) {
    while (!text.includes(`data: event ${event}\n\n`)) {
      const { value, done } = await reader.read()
      if (done === true) break
      text += value
    }
    // The app writes the next event only when released: a gateway that held chunks back would deliver them all at the end.
    writtenWhenSeen.push(stack.echo.sseWritten)
    stack.echo.release()
  }
  t.same(writtenWhenSeen, [1, 2, 3], 'each event arrived while the app had written only it')
  t.match(text, /data: event 0\n\n.*data: event 1\n\n.*data: event 2\n\n/s)
})

t.test('a large chunked download arrives whole; a request body streams to the app as it is sent', async (t) => {
  const stack = await startSidecarStack(t)
  const { browser } = await stack.signIn()
  const size = 8 * 1024 * 1024 + 123
  const download = await browser.fetch(`/download?bytes=${size}`)
  t.equal(download.status, 200)
  const body = Buffer.from(await download.arrayBuffer())
  t.equal(body.length, size)
  t.ok(body.equals(downloadBytes(size)), 'byte for byte')

  // The second half is sent only once the app has received the first: a gateway that buffered bodies would stall here.
  const first = Buffer.alloc(256 * 1024, 'a')
  const second = Buffer.alloc(256 * 1024, 'b')
  const answer = new Promise<{ status: number, body: string }>((resolve, reject) => {
    const request = httpRequest(`${stack.url}/receive`, { method: 'POST', headers: { cookie: browser.cookieHeader(), origin: stack.url, 'content-type': 'application/octet-stream' } }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { text += chunk })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }))
    })
    request.on('error', reject)
    request.write(first)
    void (async () => {
      for (let wait = 0; wait < 1000 && stack.echo.uploadReceived < first.length; wait++) await sleep(5)
      request.end(second)
    })()
  })
  const uploadedBeforeEnd = await (async () => {
    for (let wait = 0; wait < 1000 && stack.echo.uploadReceived < first.length; wait++) await sleep(5)
    return stack.echo.uploadReceived
  })()
  t.ok(uploadedBeforeEnd >= first.length, 'the app had the first half before the client sent the second')
  const result = await answer
  t.equal(result.status, 200)
  t.same(JSON.parse(result.body), { bytes: first.length + second.length, sha256: createHash('sha256').update(first).update(second).digest('hex') })
})

t.test('a WebSocket to the app opens only when signed in, and carries the person\'s identity', async (t) => {
  const stack = await startSidecarStack(t)
  const wsUrl = stack.url.replace(/^http/, 'ws')

  const refused = await openSocket(`${wsUrl}/live`)
  t.match(refused, { status: 401 }, 'signed out: refused before it reaches the app')
  t.equal(stack.echo.requests.length, 0)

  const { browser } = await stack.signIn()
  const opened = await openSocket(`${wsUrl}/live?room=1`, { cookie: `${browser.cookieHeader()}; app-pref=dark`, 'x-forwarded-email': 'mallory@example.com' })
  if (!('socket' in opened)) throw new Error(`refused with ${opened.status}`)
  t.teardown(() => opened.socket.terminate())
  const handshake = opened.hello.request
  t.equal(handshake.url, '/live?room=1')
  t.equal(headerValue(handshake, 'x-forwarded-email'), 'alice@example.com', 'the gateway\'s identity, not the client\'s')
  t.ok(headerValue(handshake, 'x-gemgate-assertion'), 'with an assertion')
  t.same(handshake.cookies, { 'app-pref': 'dark' }, 'the gateway\'s cookie stays with the gateway')

  const echoed = new Promise<string>((resolve) => opened.socket.once('message', (data) => resolve(String(data))))
  opened.socket.send('ping through the gateway')
  t.equal(await echoed, 'ping through the gateway', 'messages flow both ways')

  const appRefused = await openSocket(`${wsUrl}/ws-refuse`, { cookie: browser.cookieHeader() })
  t.match(appRefused, { status: 403, body: 'refused' }, 'the app\'s own refusal is passed on')

  const publicSocket = await openSocket(`${wsUrl}/public/feed`)
  if (!('socket' in publicSocket)) throw new Error(`refused with ${publicSocket.status}`)
  t.teardown(() => publicSocket.socket.terminate())
  t.equal(headerValue(publicSocket.hello.request, 'x-forwarded-email'), undefined, 'a public path opens signed out, without identity')
})

t.test('closing the gateway cuts open WebSockets instead of waiting for them', async (t) => {
  const stack = await startSidecarStack(t)
  const { browser } = await stack.signIn()
  const opened = await openSocket(`${stack.url.replace(/^http/, 'ws')}/live`, { cookie: browser.cookieHeader() })
  if (!('socket' in opened)) throw new Error(`refused with ${opened.status}`)
  const closed = new Promise((resolve) => opened.socket.once('close', resolve))
  await stack.app.close()
  await closed
  t.pass('the socket closed and the gateway finished closing')
})
