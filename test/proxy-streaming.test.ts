import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import t, { type Test } from 'tap'
import type { RecordedRequest } from './fixtures/gemini.js'
import { personWithKey, startProxyStack, type ProxyStack, type ProxyStackOptions } from './helpers/person.js'
import { selfSignedCert } from './fixtures/gemini.js'

const STREAM = '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse'
const BODY = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'a long answer please' }] }] })

/** The request the upstream saw abandoned, or null if none was within a generous bound (so a regression fails instead of hanging). */
async function abandonedWithin (abandoned: Promise<RecordedRequest>): Promise<RecordedRequest | null> {
  let timer: NodeJS.Timeout | undefined
  const bound = new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), 10_000) })
  try {
    return await Promise.race([abandoned, bound])
  } finally {
    clearTimeout(timer)
  }
}

async function waitFor (condition: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 500 && !condition(); attempt++) await new Promise((resolve) => setTimeout(resolve, 10))
}

/**
 * The same gateway over either upstream protocol: plain HTTP/1.1, or HTTP/2 over TLS (the
 * protocol Google serves), its test certificate trusted through UPSTREAM_CA_FILE. Aborts and
 * backpressure must hold the same on both.
 */
async function stackOver (t: Test, protocol: 'http/1.1' | 'h2', options: ProxyStackOptions = {}): Promise<ProxyStack> {
  if (protocol === 'http/1.1') return await startProxyStack(t, { memory: true, ...options })
  const cert = await selfSignedCert(t)
  return await startProxyStack(t, {
    memory: true,
    ...options,
    gemini: { ...options.gemini, tls: { key: cert.key, cert: cert.cert }, http2: true },
    env: { UPSTREAM_CA_FILE: cert.certPath, ...options.env },
  })
}

for (const protocol of ['http/1.1', 'h2'] as const) {
  t.test(`upstream over ${protocol}`, async (t) => {
    t.test('a client that disconnects before the answer starts aborts the upstream request', async (t) => {
      const stack = await stackOver(t, protocol)
      const holder = await personWithKey(stack)
      stack.gemini.fault({ kind: 'hang' })
      const abandoned = stack.gemini.nextAbort()
      const controller = new AbortController()
      const call = fetch(`${stack.url}${STREAM}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: BODY, signal: controller.signal })
      await waitFor(() => stack.gemini.requests.length === 1)
      controller.abort()
      await t.rejects(call)
      t.equal((await abandonedWithin(abandoned))?.aborted, true, 'the upstream saw its client go away')
    })

    t.test('a client that disconnects mid-stream aborts the upstream stream', async (t) => {
      const stack = await stackOver(t, protocol)
      const holder = await personWithKey(stack)
      stack.gemini.fault({ kind: 'hang', afterChunks: 1 })
      const abandoned = stack.gemini.nextAbort()
      const request = httpRequest(`${stack.url}${STREAM}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' } })
      request.end(BODY)
      const [response] = await once(request, 'response') as [import('node:http').IncomingMessage]
      t.equal(response.statusCode, 200)
      t.equal(response.headers['content-type'], 'text/event-stream')
      const [first] = await once(response, 'data') as [Buffer]
      t.match(first.toString(), /^data: \{/, 'the first chunk arrived while the upstream still streams')
      request.destroy()
      t.equal((await abandonedWithin(abandoned))?.aborted, true, 'the upstream request was cancelled')
    })

    t.test('an upstream that resets mid-stream ends the client\'s stream, no hang', async (t) => {
      const stack = await stackOver(t, protocol)
      const holder = await personWithKey(stack)
      stack.gemini.fault({ kind: 'reset', afterChunks: 2 })
      const response = await fetch(`${stack.url}${STREAM}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: BODY })
      t.equal(response.status, 200)
      await t.rejects(response.text(), 'the broken stream is reported as broken, not as a clean end')
    })

    t.test('request bodies stream upstream: a large chunked upload arrives whole', async (t) => {
      const stack = await stackOver(t, protocol, { env: { RETRY_BODY_LIMIT_BYTES: '1024' } })
      const holder = await personWithKey(stack)
      const start = await fetch(`${stack.url}/upload/v1beta/files`, {
        method: 'POST',
        headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json', 'x-goog-upload-protocol': 'resumable', 'x-goog-upload-command': 'start' },
        body: JSON.stringify({ file: { displayName: 'big.bin' } }),
      })
      const uploadUrl = start.headers.get('x-goog-upload-url')!
      t.match(uploadUrl, new RegExp(`^${stack.url}/upload/`), 'the upload URL points at the gateway')
      const parts = Array.from({ length: 64 }, (_, index) => Buffer.alloc(16 * 1024, index))
      const body = new ReadableStream<Uint8Array>({
        pull (controller) {
          const next = parts.shift()
          if (next === undefined) controller.close()
          else controller.enqueue(next)
        },
      })
      const finish = await fetch(uploadUrl, {
        method: 'POST',
        headers: { 'x-goog-api-key': holder.key, 'x-goog-upload-command': 'upload, finalize', 'x-goog-upload-offset': '0' },
        body,
        duplex: 'half',
      } as RequestInit)
      t.equal(finish.status, 200)
      t.equal(finish.headers.get('x-goog-upload-status'), 'final')
      const file = (await finish.json() as { file: { name: string, sizeBytes: string } }).file
      t.equal(file.sizeBytes, String(64 * 16 * 1024))
      t.equal(stack.gemini.files.get(file.name)?.content.at(-1), 63, 'the last part arrived last')
      t.notOk(JSON.stringify(stack.gemini.requests.map((request) => request.query)).includes('gk_'))
    })

    t.test('a client that reads slowly holds the upstream back: the gateway never buffers a whole answer', async (t) => {
      const stack = await stackOver(t, protocol)
      const holder = await personWithKey(stack)
      const total = 64 * 1024 * 1024
      const chunk = Buffer.alloc(256 * 1024, 0x61)
      let written = 0
      let upstreamFinished = false
      stack.gemini.onNext((_request, response) => {
        response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total })
        const pump = (): void => {
          while (written < total) {
            written += chunk.length
            if (!response.write(chunk)) {
              response.once('drain', pump)
              return
            }
          }
          response.end()
          upstreamFinished = true
        }
        pump()
      })
      const request = httpRequest(`${stack.url}/v1beta/files/big:download`, { method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' } })
      request.end('{}')
      const [response] = await once(request, 'response') as [import('node:http').IncomingMessage]
      t.equal(response.statusCode, 200)
      response.pause()
      // The client reads nothing. Wait (boundedly) until the upstream has stopped writing or has written everything.
      let last = -1
      for (let quiet = 0, polls = 0; quiet < 10 && !upstreamFinished && polls < 600; polls++) {
        quiet = written === last ? quiet + 1 : 0
        last = written
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      t.notOk(upstreamFinished, 'the upstream could not send the whole answer into a client that reads nothing')
      t.ok(written < total / 2, `the upstream was held back after ${(written / 1024 / 1024).toFixed(1)} MB of ${total / 1024 / 1024} MB`)
      let received = 0
      response.on('data', (data: Buffer) => { received += data.length })
      response.resume()
      await once(response, 'end')
      t.equal(received, total, 'once the client reads, the whole answer arrives')
    })

    t.test('answers without a body (a 204, a HEAD) reach the client with their headers and no body, and the connection is reused', async (t) => {
      const stack = await stackOver(t, protocol)
      const holder = await personWithKey(stack)
      const { Agent } = await import('node:http')
      const agent = new Agent({ keepAlive: true, maxSockets: 1 })
      t.teardown(() => { agent.destroy() })
      const call = async (method: string, path: string): Promise<{ status: number, headers: import('node:http').IncomingHttpHeaders, body: string, socket: unknown }> => {
        const request = httpRequest(`${stack.url}${path}`, { method, agent, headers: { 'x-goog-api-key': holder.key } })
        request.end()
        const [response] = await once(request, 'response') as [import('node:http').IncomingMessage]
        let body = ''
        for await (const chunk of response) body += String(chunk)
        return { status: response.statusCode ?? 0, headers: response.headers, body, socket: request.socket }
      }
      stack.gemini.onNext((_request, response) => {
        response.writeHead(204, { 'x-upstream-said': 'deleted' })
        response.end()
      })
      const deleted = await call('DELETE', '/v1beta/cachedContents/abc')
      t.equal(deleted.status, 204)
      t.equal(deleted.headers['x-upstream-said'], 'deleted')
      t.equal(deleted.body, '')
      stack.gemini.onNext((_request, response) => {
        response.writeHead(200, { 'content-type': 'application/json', 'content-length': '17', 'x-upstream-said': 'head' })
        response.end()
      })
      const head = await call('HEAD', '/v1beta/models/gemini-2.5-flash')
      t.equal(head.status, 200)
      t.equal(head.headers['x-upstream-said'], 'head')
      t.equal(head.headers['content-length'], '17', 'the length of the body a GET would have had')
      t.equal(head.body, '')
      const after = await call('GET', '/v1beta/models')
      t.equal(after.status, 200, 'the next call on the same connection is answered')
      t.equal(after.socket, deleted.socket, 'over the same kept-alive connection')
    })
  })
}
