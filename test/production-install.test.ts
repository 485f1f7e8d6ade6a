// What the Docker image does, without Docker: a production-only install of the lockfile next
// to a fresh build, started the way the image's CMD starts it.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { access, copyFile, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { freePort } from './fixtures/ports.js'

const ROOT = resolve(import.meta.dirname, '..')
const BUILD_TIMEOUT = 120_000
const INSTALL_TIMEOUT = 150_000
const START_TIMEOUT = 20_000
const EXIT_TIMEOUT = 15_000
/** sysexits.h EX_CONFIG, what main.ts exits with on a bad configuration. */
const EX_CONFIG = 78
/** Packages only bench/ uses: the production install must not carry them (issue 17, item 12). */
const BENCH_ONLY = ['@fastify/http-proxy', '@fastify/reply-from', '@portkey-ai/gateway']
const REQUIRED = ['PUBLIC_URL', 'OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET', 'COOKIE_SECRETS', 'TOKEN_ENCRYPTION_KEYS', 'ALLOWED_EMAIL_DOMAINS']

const run = promisify(execFile)

t.setTimeout(BUILD_TIMEOUT + INSTALL_TIMEOUT + 60_000)

/** The test runner's environment minus what would leak into npm or the gateway (loaders, coverage). */
function toolEnvironment (): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) =>
    !/^(TAP|_TAPJS|NODE_OPTIONS$|NODE_V8_COVERAGE$|TS_NODE)/.test(name)))
}

/** Runs a build step; a failure carries the step's own output, not a stack trace. */
async function step (what: string, file: string, args: string[], cwd: string, timeout: number): Promise<void> {
  try {
    await run(file, args, { cwd, env: toolEnvironment(), timeout, maxBuffer: 16 * 1024 * 1024 })
  } catch (error) {
    const { stdout = '', stderr = '', message } = error as { stdout?: string, stderr?: string, message: string }
    throw new Error(`${what} failed: ${message.split('\n')[0]}\n${stdout}${stderr}`)
  }
}

/** Builds into a temporary directory and installs production dependencies there, like the image. */
async function prepareImageDirectory (t: Test): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'gemgate-production-'))
  t.teardown(() => rm(directory, { recursive: true, force: true }))
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc')
  await step('npm run build', process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', join(directory, 'dist')], ROOT, BUILD_TIMEOUT)
  await copyFile(join(ROOT, 'package.json'), join(directory, 'package.json'))
  await copyFile(join(ROOT, 'package-lock.json'), join(directory, 'package-lock.json'))
  await step('npm ci --omit=dev', 'npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'],
    directory, INSTALL_TIMEOUT)
  return directory
}

interface Gateway {
  child: ChildProcess
  output: () => { stdout: string, stderr: string }
  exited: Promise<[number | null, NodeJS.Signals | null]>
}

/** The image's CMD (the Dockerfile's last exec-form CMD): `node`, its flags, the script. */
async function imageCommand (): Promise<string[]> {
  const dockerfile = await readFile(join(ROOT, 'Dockerfile'), 'utf8')
  const cmd = [...dockerfile.matchAll(/^CMD (\[.*\])$/gm)].at(-1)
  if (cmd === undefined) throw new Error('the Dockerfile has no exec-form CMD')
  return JSON.parse(cmd[1]!) as string[]
}

async function startGateway (t: Test, directory: string, env: Record<string, string>): Promise<Gateway> {
  const [node, ...args] = await imageCommand()
  t.equal(node, 'node', 'the image starts node')
  const child = spawn(process.execPath, args, { cwd: directory, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (data: Buffer) => { stdout += data.toString() })
  child.stderr!.on('data', (data: Buffer) => { stderr += data.toString() })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return { child, output: () => ({ stdout, stderr }), exited }
}

async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  const timer = sleep(ms, undefined, { ref: false }).then(() => { throw new Error(`${what}: no result within ${ms} ms`) })
  return await Promise.race([promise, timer])
}

async function waitForHealthy (gateway: Gateway, url: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT
  while (Date.now() < deadline) {
    if (gateway.child.exitCode !== null) throw new Error(`the gateway exited with ${gateway.child.exitCode}:\n${gateway.output().stderr}`)
    const response = await fetch(url, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined)
    if (response?.status === 200) return
    await sleep(100)
  }
  throw new Error(`${url} did not answer 200 within ${START_TIMEOUT} ms:\n${gateway.output().stdout}\n${gateway.output().stderr}`)
}

t.test('npm start runs the gateway as the image does: the same Node flags, the same script', async (t) => {
  const { scripts } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  t.equal(scripts.start, (await imageCommand()).join(' '))
  t.match(scripts.start, /--max-semi-space-size=\d+/, 'with a bounded young generation (docs/performance.md)')
})

t.test('a production install of a fresh build', async (t) => {
  const directory = await prepareImageDirectory(t)
  await t.test('starts, answers /healthz and stops cleanly on SIGTERM', async (t) => {
    const port = await freePort()
    const unusedPort = await freePort()
    const gateway = await startGateway(t, directory, {
      PATH: process.env.PATH ?? '',
      PORT: String(port),
      HOST: '127.0.0.1',
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      OIDC_ISSUER: `http://127.0.0.1:${unusedPort}`,
      OIDC_CLIENT_ID: 'production-install-test',
      OIDC_CLIENT_SECRET: randomBytes(16).toString('hex'),
      COOKIE_SECRETS: randomBytes(32).toString('base64url'),
      TOKEN_ENCRYPTION_KEYS: randomBytes(32).toString('base64'),
      ALLOWED_EMAIL_DOMAINS: 'example.com',
    })

    await waitForHealthy(gateway, `http://127.0.0.1:${port}/healthz`)
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`)
    t.equal(ready.status, 503, 'not ready while the provider is unreachable')

    gateway.child.kill('SIGTERM')
    const [code, signal] = await within(gateway.exited, EXIT_TIMEOUT, 'exit after SIGTERM')
    const { stdout, stderr } = gateway.output()
    t.equal(signal, null, 'exits by itself, not by the signal')
    t.equal(code, 0, `exit code 0\n${stderr}`)
    t.match(stdout, /REDIS_URL is not set/, 'warns about the in-memory store')
    for (const line of stdout.trim().split('\n')) t.doesNotThrow(() => JSON.parse(line), 'logs JSON lines when not on a terminal')
  })

  await t.test('carries no package that only the bench uses', async (t) => {
    for (const name of BENCH_ONLY) {
      const installed = await access(join(directory, 'node_modules', name)).then(() => true, () => false)
      t.notOk(installed, `${name} is not installed`)
    }
  })

  await t.test('with no configuration at all it exits 78 and names every required setting', async (t) => {
    const gateway = await startGateway(t, directory, { PATH: process.env.PATH ?? '' })
    const [code] = await within(gateway.exited, EXIT_TIMEOUT, 'exit without configuration')
    const { stderr } = gateway.output()
    t.equal(code, EX_CONFIG, 'EX_CONFIG')
    for (const name of REQUIRED) t.match(stderr, name, `names ${name}`)
  })
})
