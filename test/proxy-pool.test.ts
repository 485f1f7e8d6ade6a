// The upstream pool after a burst (issue 18, target 5): what a burst grew does not stay.
// Counts connections through UpstreamPool.clients (undici Clients held, connected or not).
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { Config } from '../src/config/schema.js'
import { createUpstreamPool } from '../src/proxy/upstream.js'
import { DEFAULT_IDLE_CONNECTIONS, type UpstreamPool } from '../src/proxy/upstream-pool.js'
import { selfSignedCert, startFakeGemini } from './fixtures/gemini.js'

const STREAM = '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse'
const GENERATE = '/v1beta/models/gemini-2.5-flash:generateContent'
const BODY = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hello' }] }] })

/** An HTTP/1.1 upstream that starts every answer and holds it until `release()`. */
async function holdingUpstream (t: Test) {
  const held: ServerResponse[] = []
  const sockets: Socket[] = []
  const server = createServer((request, response) => {
    request.resume()
    sockets.push(request.socket)
    response.writeHead(200, { 'content-type': 'text/event-stream' })
    response.write('data: {}\r\n\r\n')
    held.push(response)
  })
  server.keepAliveTimeout = 120_000
  server.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    held: () => held.length,
    /** The connection each request came over, in order. */
    sockets,
    release: () => { for (const response of held.splice(0)) response.end() },
    /** What the upstream's keep-alive timeout does to an idle connection, at once. */
    expireKeepAlive: () => { server.closeIdleConnections() },
  }
}

async function upstreamPool (t: Test, url: string, settings: Partial<Config['upstream']> = {}): Promise<UpstreamPool> {
  const pool = await createUpstreamPool({ url, http2: true, timeoutSeconds: 30, retryBodyLimitBytes: 0, apiKeySurfaces: [], ...settings } as Config['upstream'])
  t.teardown(async () => { await pool.destroy() })
  return pool
}

async function waitFor (condition: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 500 && !condition(); attempt++) await sleep(10)
}

/** A call as the gateway makes it: `idempotent` lets HTTP/2 streams share a connection (see UpstreamRequest). */
async function call (pool: UpstreamPool, path: string): Promise<string> {
  const response = await pool.request({ method: 'POST', path, body: BODY, idempotent: true, headers: { 'content-type': 'application/json', authorization: 'Bearer pool-test' } })
  return await response.body.text()
}

t.test('after a burst over HTTP/1.1 the pool keeps a bounded number of connections, and calls still go through', async (t) => {
  const upstream = await holdingUpstream(t)
  const pool = await upstreamPool(t, upstream.url)
  const burst = DEFAULT_IDLE_CONNECTIONS + 44
  const answers = Array.from({ length: burst }, async () => await call(pool, STREAM))
  await waitFor(() => upstream.held() === burst)
  t.equal(upstream.held(), burst, 'every call of the burst reached the upstream')
  t.equal(pool.clients, burst, 'one connection per call in flight')

  upstream.release()
  t.equal((await Promise.all(answers)).length, burst)
  await waitFor(() => pool.clients <= DEFAULT_IDLE_CONNECTIONS)
  t.equal(pool.clients, DEFAULT_IDLE_CONNECTIONS, 'the idle connections beyond the bound were closed as they freed up')

  upstream.expireKeepAlive()
  await waitFor(() => pool.clients === 0)
  t.equal(pool.clients, 0, 'a connection the upstream closed is dropped, not kept')

  const after = call(pool, STREAM)
  await waitFor(() => upstream.held() === 1)
  upstream.release()
  t.equal(await after, 'data: {}\r\n\r\n', 'a call after the burst goes through')
  t.equal(pool.clients, 1)
})

t.test('steady calls after a burst reuse the connection freed last', async (t) => {
  const upstream = await holdingUpstream(t)
  const pool = await upstreamPool(t, upstream.url)
  const answers = Array.from({ length: 20 }, async () => await call(pool, STREAM))
  await waitFor(() => upstream.held() === 20)
  upstream.release()
  await Promise.all(answers)
  // undici frees an HTTP/1.1 connection on the turn after its answer ended.
  await waitFor(() => pool.ready === 20)
  const before = upstream.sockets.length
  for (let round = 0; round < 5; round++) {
    const one = call(pool, STREAM)
    await waitFor(() => upstream.held() === 1)
    upstream.release()
    await one
    await waitFor(() => pool.ready === 20)
  }
  // Each call went to the top of the stack: the other 19 idle connections are left to the keep-alive.
  t.equal(new Set(upstream.sockets.slice(before)).size, 1, 'one connection carried the five calls')
  t.equal(pool.clients, 20, 'no connection was added')
  t.equal(pool.ready, 20)
})

t.test('over HTTP/2 a burst of streams shares a few connections', async (t) => {
  const cert = await selfSignedCert(t)
  const gemini = await startFakeGemini(t, {
    provider: { introspect: async () => ({ active: true, sub: 'pool-test' }) },
    tls: { key: cert.key, cert: cert.cert },
    http2: true,
    chunkDelayMs: 50,
    chunkCount: 3,
  })
  const pool = await upstreamPool(t, gemini.url, { caFile: cert.certPath })
  // One call first: calls that arrive while the first TLS handshake is under way each open a connection of their own.
  await call(pool, GENERATE)
  const streams = 150
  const answers = await Promise.all(Array.from({ length: streams }, async () => (await call(pool, STREAM)).split('data: ').length - 1))
  t.same(answers, Array.from({ length: streams }, () => 3), 'every stream got its three chunks')
  t.ok(gemini.requests.every((request) => request.httpVersion === '2.0'))
  t.ok(gemini.connectionsOpened <= 3, `${streams} streams over ${gemini.connectionsOpened} connection(s)`)
  t.ok(pool.clients <= 3, `the pool holds ${pool.clients} connection(s)`)
  t.equal(await call(pool, GENERATE) !== '', true, 'a call after the burst goes through')
})
