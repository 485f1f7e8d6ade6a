// What an operator sees when the gateway cannot start: one line naming the setting and the
// cause, no stack trace, and an exit code that tells a supervisor whether to retry.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { freePort } from './fixtures/ports.js'
import { buildGateway } from './helpers/build.js'

/** sysexits.h EX_CONFIG: a setting is wrong, restarting will not help. */
const EX_CONFIG = 78
/** sysexits.h EX_UNAVAILABLE: something the gateway needs is busy or away; a retry may help. */
const EX_UNAVAILABLE = 69
const STACK_FRAME = /^\s+at /m

async function validEnvironment (): Promise<Record<string, string>> {
  const port = await freePort()
  return {
    PATH: process.env.PATH ?? '',
    HOST: '127.0.0.1',
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    OIDC_ISSUER: `http://127.0.0.1:${await freePort()}`,
    OIDC_CLIENT_ID: 'startup-errors-test',
    OIDC_CLIENT_SECRET: randomBytes(16).toString('hex'),
    COOKIE_SECRETS: randomBytes(32).toString('base64url'),
    TOKEN_ENCRYPTION_KEYS: randomBytes(32).toString('base64'),
    ALLOWED_EMAIL_DOMAINS: 'example.com',
    LOG_LEVEL: 'fatal',
  }
}

t.test('the built gateway names the setting and the cause when it cannot start', async (t) => {
  const main = await buildGateway(t, 'startup-errors')

  async function run (env: Record<string, string>, args: string[] = []): Promise<{ code: number | null, stderr: string, stdout: string }> {
    const child = spawn(process.execPath, [main, ...args], { cwd: t.testdirName, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    let stdout = ''
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    const [code] = await once(child, 'exit') as [number | null]
    clearTimeout(timer)
    return { code, stderr, stdout }
  }
  t.testdir({})

  t.test('a port already in use', async (t) => {
    const env = await validEnvironment()
    const holder = createServer()
    await new Promise<void>((resolve) => holder.listen(Number(env.PORT), '127.0.0.1', resolve))
    t.teardown(() => holder.close())
    const { code, stderr, stdout } = await run(env)
    t.equal(code, EX_UNAVAILABLE, 'EX_UNAVAILABLE: the port may be free on the next try')
    t.equal(stderr.trim().split('\n').length, 1, 'one line', { stderr })
    t.match(stderr, `PORT ${env.PORT}`)
    t.match(stderr, 'HOST 127.0.0.1')
    t.match(stderr, 'already in use')
    t.notMatch(stderr + stdout, STACK_FRAME, 'no stack trace')
  })

  t.test('a missing UPSTREAM_CA_FILE', async (t) => {
    const env = { ...await validEnvironment(), UPSTREAM_CA_FILE: join(t.testdirName, 'missing-ca.pem') }
    const { code, stderr, stdout } = await run(env)
    t.equal(code, EX_CONFIG)
    t.match(stderr, /UPSTREAM_CA_FILE \(upstream\.caFile\): cannot read .*missing-ca\.pem \(ENOENT\)/)
    t.notMatch(stderr + stdout, STACK_FRAME, 'no stack trace')
  })

  t.test('--check-config validates and exits without listening, as compose runs it before the gateway', async (t) => {
    const env = await validEnvironment()
    const good = await run(env, ['--check-config'])
    t.equal(good.code, 0)
    t.match(good.stdout, 'the configuration is valid')
    const { COOKIE_SECRETS: _unused, ...incomplete } = env
    const bad = await run(incomplete, ['--check-config'])
    t.equal(bad.code, EX_CONFIG)
    t.match(bad.stderr, 'COOKIE_SECRETS')
  })
})
