import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { buildApp, type AppOptions } from '../src/app.js'
import { loadConfig } from '../src/config/load.js'
import { loggerOptions } from '../src/ops/logger.js'
import { startRedis } from './fixtures/redis.js'
import { startDiscovery } from './helpers/discovery.js'

/** A made request id: a UUID (the gateway makes version 8 ones, RFC 9562). */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

const SECRETS = {
  authorization: 'authorization-secret-4f1c',
  cookie: 'cookie-secret-93ad',
  apiKey: 'gk_apikey-secret-7b2e',
  queryKey: 'gk_query-secret-c0de',
  encodedQueryKey: 'gk_encoded-query-secret-11aa',
  assertion: 'assertion-secret-5e5e',
  code: 'oauth-code-secret-8d8d',
}

interface Gateway {
  url: string
  app: Awaited<ReturnType<typeof buildApp>>
  /** Every log line so far, parsed. */
  logs(): Array<Record<string, unknown>>
  /** Every log line so far, raw. */
  logText(): string
}

/** Builds the app in-process against `redisUrl` and `issuer`, listening on a free port, with its log captured. */
async function startGateway (t: Test, redisUrl: string, issuer: string): Promise<Gateway> {
  const config = loadConfig({
    env: {
      PUBLIC_URL: 'http://127.0.0.1:8080',
      OIDC_ISSUER: issuer,
      OIDC_CLIENT_ID: 'gemgate',
      OIDC_CLIENT_SECRET: 'client-secret-for-ops-tests',
      COOKIE_SECRETS: 'cookie-secret-for-ops-tests-0123456789',
      TOKEN_ENCRYPTION_KEYS: randomBytes(32).toString('base64'),
      ALLOWED_EMAIL_DOMAINS: 'example.com',
      REDIS_URL: redisUrl,
      LOG_LEVEL: 'info',
    },
    cwd: t.testdir(),
  })
  const lines: string[] = []
  const stream = { write (line: string) { lines.push(line) } }
  const logger = { ...(loggerOptions(config, false) as object), stream } as AppOptions['logger']
  const app = await buildApp(config, { logger })
  t.teardown(async () => { await app.close() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return {
    url: `http://127.0.0.1:${port}`,
    app,
    logs: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
    logText: () => lines.join(''),
  }
}

async function readiness (url: string): Promise<{ status: number, body: { status: string, down?: string[], checks: Record<string, string> } }> {
  const response = await fetch(`${url}/readyz`)
  return { status: response.status, body: await response.json() as { status: string, down?: string[], checks: Record<string, string> } }
}

/** Polls /readyz until it answers `status`; fails the test after `timeoutMs`. */
async function readinessBecomes (t: Test, url: string, status: number, timeoutMs = 20_000): Promise<Awaited<ReturnType<typeof readiness>>> {
  const deadline = Date.now() + timeoutMs
  let last = await readiness(url)
  while (last.status !== status && Date.now() < deadline) {
    await sleep(100)
    last = await readiness(url)
  }
  t.equal(last.status, status, `/readyz becomes ${status}`, { body: last.body })
  return last
}

/** Sends raw bytes and returns the raw response head. */
async function rawRequest (port: number, text: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' })
    let received = ''
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1')
      if (received.includes('\r\n\r\n')) socket.end()
    })
    socket.on('end', () => resolve(received))
    socket.on('close', () => resolve(received))
    socket.on('error', reject)
    socket.write(text, 'latin1')
  })
}

t.test('health, readiness and their dependencies', async (t) => {
  const redis = await startRedis(t)
  const provider = await startDiscovery(t)
  const gateway = await startGateway(t, redis.url, provider.issuer)

  t.test('/healthz answers 200 while the process runs', async (t) => {
    const response = await fetch(`${gateway.url}/healthz`)
    t.equal(response.status, 200)
    t.same(await response.json(), { status: 'ok' })
  })

  t.test('/readyz is 200 when Redis answers and the provider metadata is loaded', async (t) => {
    const { body } = await readinessBecomes(t, gateway.url, 200)
    t.same(body, { status: 'ready', checks: { redis: 'ok', provider: 'ok' } })
  })

  t.test('/readyz is 503 naming redis while Redis is down, and 200 again after it is back', async (t) => {
    await redis.stop()
    const down = await readinessBecomes(t, gateway.url, 503)
    t.same(down.body.down, ['redis'], 'only redis is down')
    t.equal(down.body.checks.provider, 'ok')
    t.equal((await fetch(`${gateway.url}/healthz`)).status, 200, 'liveness does not depend on Redis')
    const failing = gateway.logs().filter((line) => line.msg === 'request' && line.status === 503)
    t.ok(failing.length >= 1, 'a failing readiness probe is logged as a request line', { logs: gateway.logs() })
    t.match(failing[0], { method: 'GET', route: '/readyz', status: 503, level: 40 })
    await redis.start()
    const up = await readinessBecomes(t, gateway.url, 200)
    t.same(up.body.checks, { redis: 'ok', provider: 'ok' })
  })
})

t.test('/readyz is 503 naming provider while the provider is down, 200 once it is up', async (t) => {
  const redis = await startRedis(t)
  const provider = await startDiscovery(t, { down: true })
  const gateway = await startGateway(t, redis.url, provider.issuer)
  const down = await readiness(gateway.url)
  t.equal(down.status, 503)
  t.same(down.body.down, ['provider'])
  t.equal(down.body.checks.redis, 'ok')
  await provider.start()
  const { body } = await readinessBecomes(t, gateway.url, 200)
  t.same(body.checks, { redis: 'ok', provider: 'ok' })
  await provider.stop()
  t.equal((await readiness(gateway.url)).status, 200, 'metadata once loaded stays loaded through a later outage')
})

t.test('a request that reaches a closing replica gets 503 in Google\'s error shape and Connection: close', async (t) => {
  const redis = await startRedis(t)
  // The provider holds its discovery answer, so GET /readyz stays in flight while the app closes.
  const provider = await startDiscovery(t, { hold: true })
  const gateway = await startGateway(t, redis.url, provider.issuer)
  await provider.requested()
  const { port } = new URL(gateway.url)
  const held = fetch(`${gateway.url}/readyz`)
  // A second connection has sent half of its request when the replica starts closing.
  const socket = connect(Number(port), '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  let received = ''
  socket.setEncoding('latin1')
  socket.on('data', (data: string) => { received += data })
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  socket.write('GET /v1beta/models HTTP/1.1\r\nhost: 127.0.0.1\r\n')
  await sleep(300) // let both reach the gateway
  const closed = gateway.app.close()
  await sleep(50)
  socket.write('accept: application/json\r\n\r\n')
  await ended
  provider.release()
  t.equal((await held).status, 200, 'the request in flight completes')
  await closed
  t.match(received, /^HTTP\/1\.1 503 /, 'the late request is not served', { received })
  t.match(received, /\r\nconnection: close\r\n/i)
  const body = JSON.parse(received.slice(received.indexOf('\r\n\r\n') + 4)) as unknown
  t.match(body, { error: { code: 503, status: 'UNAVAILABLE', message: /shutting down/ } })
  const drained = gateway.logs().filter((line) => line.msg === 'request failed' || (line.err as { code?: string } | undefined)?.code === 'GEMGATE_UNAVAILABLE')
  t.ok(drained.length > 0, 'the 503 is logged')
  t.ok(drained.every((line) => (line.level as number) < 50), 'at warn, not error: a drain is not a failure of the gateway')
})

t.test('/metrics, request ids, 404s and the request log', async (t) => {
  const redis = await startRedis(t)
  const provider = await startDiscovery(t)
  const gateway = await startGateway(t, redis.url, provider.issuer)
  const port = Number(new URL(gateway.url).port)

  t.test('/metrics is Prometheus text with requests by route and status, and process metrics', async (t) => {
    await fetch(`${gateway.url}/healthz`)
    await fetch(`${gateway.url}/healthz`)
    await fetch(`${gateway.url}/no-such-path-1`)
    await fetch(`${gateway.url}/no-such-path-2`)
    const response = await fetch(`${gateway.url}/metrics`)
    t.equal(response.status, 200)
    t.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
    const text = await response.text()
    t.match(text, '# TYPE gemgate_http_requests_total counter')
    const healthz = /^gemgate_http_requests_total\{method="GET",route="\/healthz",status="200"\} (\d+)$/m.exec(text)
    t.ok(healthz, 'a series for GET /healthz 200', { text })
    t.ok(Number(healthz?.[1]) >= 2, 'counts both requests')
    t.match(text, /^gemgate_http_requests_total\{method="GET",route="unmatched",status="404"\} 2$/m, 'unknown paths share one series')
    t.notMatch(text, 'no-such-path', 'raw paths never become labels')
    t.match(text, /^gemgate_http_request_duration_seconds_bucket\{.*route="\/healthz".*\} \d+$/m)
    t.match(text, /^process_cpu_user_seconds_total \d/m)
    t.match(text, /^process_resident_memory_bytes \d/m)
    t.match(text, /^nodejs_eventloop_lag_seconds \d/m)
  })

  t.test('a valid x-request-id passes through', async (t) => {
    const response = await fetch(`${gateway.url}/healthz`, { headers: { 'x-request-id': 'trace-abc.123:xyz_9' } })
    t.equal(response.headers.get('x-request-id'), 'trace-abc.123:xyz_9')
  })

  t.test('a request without one gets a fresh id, different each time', async (t) => {
    const first = (await fetch(`${gateway.url}/healthz`)).headers.get('x-request-id')
    const second = (await fetch(`${gateway.url}/healthz`)).headers.get('x-request-id')
    t.match(first, UUID)
    t.match(second, UUID)
    t.not(first, second)
  })

  t.test('a malicious or oversized x-request-id is replaced', async (t) => {
    for (const given of ['x'.repeat(500), 'abc def', '"><script>alert(1)</script>', 'abc%0d%0aset-cookie:%20a=b', 'id, other-id']) {
      const response = await fetch(`${gateway.url}/healthz`, { headers: { 'x-request-id': given } })
      const echoed = response.headers.get('x-request-id') ?? ''
      t.not(echoed, given, `replaced: ${given.slice(0, 40)}`)
      t.match(echoed, UUID)
      t.equal(response.headers.get('set-cookie'), null)
    }
    // A bare CR cannot go through fetch: send it raw. Either Node refuses the request, or
    // the id is replaced; no header is ever injected into the answer.
    const answer = await rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc\rInjected: yes\r\nConnection: close\r\n\r\n')
    t.match(answer, /^HTTP\/1\.1 (200|400) /)
    t.notMatch(answer, /^injected:/im)
    t.notMatch(answer, /x-request-id: abc\r/i)
  })

  t.test('unknown routes are 404 in Google\'s error shape', async (t) => {
    for (const method of ['GET', 'POST', 'DELETE']) {
      const response = await fetch(`${gateway.url}/definitely/not/here?x=1`, { method })
      t.equal(response.status, 404, method)
      t.match(response.headers.get('content-type'), /^application\/json/)
      const body = await response.json() as { error: { code: number, message: string, status: string } }
      t.same(Object.keys(body), ['error'])
      t.equal(body.error.code, 404)
      t.equal(body.error.status, 'NOT_FOUND')
      t.match(body.error.message, `${method} /definitely/not/here`)
    }
  })

  t.test('one log line per request, without secrets', async (t) => {
    const before = gateway.logs().length
    const requestId = 'log-line-test-1'
    const response = await fetch(`${gateway.url}/v1beta/models/gemini:generateContent?alt=sse&key=${SECRETS.queryKey}&%6Bey=${SECRETS.encodedQueryKey}&code=${SECRETS.code}`, {
      method: 'POST',
      headers: {
        'x-request-id': requestId,
        authorization: `Bearer ${SECRETS.authorization}`,
        cookie: `gemgate_session=${SECRETS.cookie}`,
        'x-goog-api-key': SECRETS.apiKey,
        'x-gemgate-assertion': SECRETS.assertion,
        'content-type': 'application/json',
      },
      body: '{}',
    })
    await response.arrayBuffer()
    const lines = gateway.logs().slice(before).filter((line) => line.requestId === requestId)
    t.equal(lines.length, 1, 'exactly one line for the request', { lines })
    const [line] = lines
    t.equal(line?.msg, 'request')
    t.equal(line?.method, 'POST')
    t.equal(line?.status, response.status)
    t.ok(line !== undefined && 'route' in line, 'names the route (null when nothing matched)')
    t.type(line?.durationMs, 'number')
    t.equal(line?.level, 30, 'info')
    t.equal(line?.url, '/v1beta/models/gemini:generateContent?alt=sse&key=[redacted]&%6Bey=[redacted]&code=[redacted]')

    const missing = await fetch(`${gateway.url}/nothing/here`, { headers: { 'x-request-id': 'log-line-test-404' } })
    await missing.arrayBuffer()
    const notFound = gateway.logs().filter((entry) => entry.requestId === 'log-line-test-404')
    t.equal(notFound.length, 1, 'one line for a 404 too')
    t.match(notFound,
      [{ msg: 'request', method: 'GET', route: null, status: 404, url: '/nothing/here', durationMs: Number }])

    const matched = await fetch(`${gateway.url}/readyz`, { headers: { 'x-request-id': 'log-line-test-2' } })
    await matched.arrayBuffer()
    t.equal(matched.status, 200)
    t.same(gateway.logs().filter((entry) => entry.requestId === 'log-line-test-2' && entry.msg === 'request'), [],
      'successful probes are not logged (they would flood the log)')

    const text = gateway.logText()
    for (const [name, secret] of Object.entries(SECRETS)) t.notMatch(text, secret, `the ${name} value is not in the log`)
  })
})
