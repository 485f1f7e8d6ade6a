import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import { connect, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { freePort } from './fixtures/ports.js'
import { buildGateway } from './helpers/build.js'
import { startDiscovery } from './helpers/discovery.js'

/** Longest a test waits for the process to exit before calling it stuck; not a speed assertion. */
const EXIT_DEADLINE_MS = 30_000

interface RunningGateway {
  url: string
  port: number
  child: ChildProcess
  /** Everything the process wrote to stdout (JSON log lines) so far. */
  output(): string
  /** Resolves when a stdout line contains `text`. */
  logged(text: string): Promise<void>
  /** Resolves with the exit code (or signal) once the process exits. */
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

async function startGateway (t: Test, main: string, issuer: string, env: Record<string, string>): Promise<RunningGateway> {
  const port = await freePort()
  const child = spawn(process.execPath, [main], {
    cwd: t.testdir(),
    env: {
      HOST: '127.0.0.1',
      PORT: String(port),
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      OIDC_ISSUER: issuer,
      OIDC_CLIENT_ID: 'gemgate',
      OIDC_CLIENT_SECRET: 'client-secret-for-shutdown-tests',
      COOKIE_SECRETS: 'cookie-secret-for-shutdown-tests-0123456789',
      TOKEN_ENCRYPTION_KEYS: randomBytes(32).toString('base64'),
      ALLOWED_EMAIL_DOMAINS: 'example.com',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  const waiters: Array<{ text: string, resolve: () => void }> = []
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
    for (const waiter of [...waiters]) {
      if (stdout.includes(waiter.text)) {
        waiters.splice(waiters.indexOf(waiter), 1)
        waiter.resolve()
      }
    }
  })
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const logged = async (text: string): Promise<void> => {
    if (stdout.includes(text)) return
    const seen = new Promise<void>((resolve) => waiters.push({ text, resolve }))
    const early = exited.then(({ code }) => { throw new Error(`gateway exited (${code}) before logging "${text}":\n${stdout}\n${stderr}`) })
    await Promise.race([seen, early])
  }
  await logged('Server listening')
  return { url: `http://127.0.0.1:${port}`, port, child, output: () => stdout, logged, exited }
}

/** A request on a fresh connection: the status, or the connection error code. */
async function freshRequest (port: number, path: string): Promise<number | string> {
  return await new Promise((resolve) => {
    const request = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (response) => {
      response.resume()
      resolve(response.statusCode ?? 0)
    })
    request.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
    request.end()
  })
}

/** A plain TCP connection to the gateway, closed when the test ends. */
async function rawConnection (t: Test, port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port })
  socket.on('error', () => {})
  t.teardown(() => { socket.destroy() })
  await once(socket, 'connect')
  return socket
}

async function withinDeadline<T> (promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${EXIT_DEADLINE_MS} ms`)), EXIT_DEADLINE_MS)
  })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}

t.test('SIGTERM drains in-flight requests, then exits 0', async (t) => {
  const main = await buildGateway(t, 'shutdown')

  t.test('a slow request in flight gets its full answer; new connections do not get served', async (t) => {
    // The provider holds its discovery answer, so GET /readyz waits on it.
    const provider = await startDiscovery(t, { hold: true })
    const gateway = await startGateway(t, main, provider.issuer, { SHUTDOWN_DRAIN_SECONDS: '20' })
    await provider.requested()

    const slow = fetch(`${gateway.url}/readyz`).then(async (response) => ({ status: response.status, body: await response.json() as Record<string, unknown> }))
    let settled = false
    void slow.finally(() => { settled = true })
    await sleep(300) // let the request reach the gateway
    t.notOk(settled, '/readyz is still waiting for the provider')

    gateway.child.kill('SIGTERM')
    await gateway.logged('shutting down: draining in-flight requests')
    await sleep(100)
    const late = await freshRequest(gateway.port, '/healthz')
    t.ok(late === 'ECONNREFUSED' || late === 'ECONNRESET' || late === 503, `a new connection after SIGTERM is refused or gets 503 (got ${late})`)
    t.notOk(settled, 'the in-flight request is still being served')
    t.equal(gateway.child.exitCode, null, 'the process waits for it')

    provider.release()
    const answer = await slow
    t.equal(answer.status, 200, 'the in-flight request completes')
    t.same(answer.body, { status: 'ready', checks: { redis: 'ok', provider: 'ok' } })
    const { code, signal } = await withinDeadline(gateway.exited, 'exit after draining')
    t.equal(signal, null)
    t.equal(code, 0, 'exit code 0 after a clean drain')
  })

  t.test('an idle gateway exits 0 on SIGTERM', async (t) => {
    const provider = await startDiscovery(t)
    const gateway = await startGateway(t, main, provider.issuer, {})
    await gateway.logged('provider metadata loaded')
    t.equal(await freshRequest(gateway.port, '/healthz'), 200)
    // An idle keep-alive connection must not hold the shutdown up.
    const keepAlive = await fetch(`${gateway.url}/readyz`)
    t.equal(keepAlive.status, 200)
    await keepAlive.arrayBuffer()
    gateway.child.kill('SIGTERM')
    const { code } = await withinDeadline(gateway.exited, 'exit when idle')
    t.equal(code, 0)
  })

  t.test('a connection that never sent a request does not hold the drain up', async (t) => {
    const provider = await startDiscovery(t)
    // Longer than the drain: Node's own headers timeout (60 s) would end such a connection only after it.
    const gateway = await startGateway(t, main, provider.issuer, { SHUTDOWN_DRAIN_SECONDS: '20' })
    await gateway.logged('provider metadata loaded')
    await rawConnection(t, gateway.port)
    await sleep(300)

    gateway.child.kill('SIGTERM')
    const { code } = await withinDeadline(gateway.exited, 'exit with a silent connection open')
    t.equal(code, 0, 'a clean exit')
    t.notMatch(gateway.output(), 'killed by timeout', 'not ended by the drain bound')
  })

  t.test('SHUTDOWN_DRAIN_SECONDS bounds the wait for a request that never ends', async (t) => {
    const provider = await startDiscovery(t)
    const gateway = await startGateway(t, main, provider.issuer, { SHUTDOWN_DRAIN_SECONDS: '1' })
    await gateway.logged('provider metadata loaded')

    // Headers promise 1 MB of body; only a few bytes ever come.
    const socket = await rawConnection(t, gateway.port)
    socket.write('POST /auth/logout HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{"a":')
    await sleep(300)
    t.equal(gateway.child.exitCode, null)

    gateway.child.kill('SIGTERM')
    const { code, signal } = await withinDeadline(gateway.exited, 'exit despite a request that never ends')
    t.pass(`the process exited (code ${code}, signal ${signal})`)
    t.equal(signal, null, 'it exits by itself, not by a kill')
    t.comment(`exit code when the drain time ran out: ${code}`)
    t.match(gateway.output(), 'shutting down: draining in-flight requests')
    t.match(gateway.output(), 'killed by timeout (1000ms)', 'it was the drain bound that ended it')
  })
})
