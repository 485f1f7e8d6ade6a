import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { freePort } from './fixtures/ports.js'
import { startRedis } from './fixtures/redis.js'
import { buildGateway } from './helpers/build.js'
import { startDiscovery } from './helpers/discovery.js'

/** Longest the test waits for a state it expects; not a speed assertion. */
const WAIT_MS = 20_000
const PASSWORD = 'redis-password-never-logged'

async function readyz (url: string): Promise<{ status: number, body: { down?: string[] } }> {
  try {
    const response = await fetch(`${url}/readyz`)
    return { status: response.status, body: await response.json() as { down?: string[] } }
  } catch {
    return { status: 0, body: {} }
  }
}

async function waitFor (what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`waited ${WAIT_MS} ms for ${what}`)
    await sleep(100)
  }
}

t.test('a replica started while Redis is down stays up, is not ready, and becomes ready when Redis answers', async (t) => {
  const main = await buildGateway(t, 'start-without-redis')
  const provider = await startDiscovery(t)
  // The server authenticates a user of its own (the default user still answers the fixture's PING).
  const redis = await startRedis(t, { args: ['--user', 'gemgate', 'on', `>${PASSWORD}`, '~*', '&*', '+@all'] })
  await redis.stop()

  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const child = spawn(process.execPath, [main], {
    cwd: t.testdir(),
    env: {
      HOST: '127.0.0.1',
      PORT: String(port),
      PUBLIC_URL: url,
      OIDC_ISSUER: provider.issuer,
      OIDC_CLIENT_ID: 'gemgate',
      OIDC_CLIENT_SECRET: randomBytes(16).toString('hex'),
      COOKIE_SECRETS: randomBytes(32).toString('base64url'),
      TOKEN_ENCRYPTION_KEYS: randomBytes(32).toString('base64'),
      ALLOWED_EMAIL_DOMAINS: 'example.com',
      REDIS_URL: `redis://gemgate:${PASSWORD}@127.0.0.1:${redis.port}`,
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  let exitCode: number | null | undefined
  child.on('exit', (code) => { exitCode = code })
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await once(child, 'exit')
    }
  })

  await waitFor('/healthz', async () => exitCode !== undefined || (await fetch(`${url}/healthz`).catch(() => null))?.status === 200)
  t.equal(exitCode, undefined, 'the process did not exit')
  const notReady = await readyz(url)
  t.equal(notReady.status, 503, '/readyz answers 503')
  t.same(notReady.body.down, ['redis'], 'naming Redis')
  await sleep(2_000)
  t.equal(exitCode, undefined, `still running two seconds later${exitCode === undefined ? '' : `; it exited ${exitCode}:\n${output}`}`)

  const redisLines = output.split('\n').filter((line) => line.includes(`127.0.0.1:${redis.port}`))
  t.equal(redisLines.length, 1, 'one log line names Redis and its address')
  t.match(redisLines[0] ?? '', /Redis at redis:\/\/127\.0\.0\.1:\d+ is not answering/)
  t.notMatch(output, PASSWORD, 'the password appears nowhere in the output')
  t.notMatch(output, /MaxRetriesPerRequestError/, 'no ioredis internals')

  await redis.start()
  await waitFor('/readyz 200', async () => (await readyz(url)).status === 200)
  t.pass('ready once Redis answers')
  await sleep(200)
  t.match(output, /Redis at redis:\/\/127\.0\.0\.1:\d+ answers again/, 'and says so')
})
