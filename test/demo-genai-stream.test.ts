// demo/genai-stream.mjs is the first thing a newcomer runs by hand: its failures must read as
// one line that says what to do, not an SDK stack trace.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { startStack } from './helpers/stack.js'

const ROOT = resolve(import.meta.dirname, '..')
const STACK_FRAME = /^\s+at /m

async function runScript (env: Record<string, string>): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['demo/genai-stream.mjs', 'Hello'], {
      cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 30_000,
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const { code, stdout = '', stderr = '' } = error as { code: number, stdout?: string, stderr?: string }
    return { code, stdout, stderr }
  }
}

t.test('without GEMGATE_KEY: one line saying where to get a key', async (t) => {
  const { code, stderr } = await runScript({ GEMGATE_URL: 'http://127.0.0.1:9' })
  t.not(code, 0)
  t.equal(stderr.trim().split('\n').length, 1, 'one line', { stderr })
  t.match(stderr, 'GEMGATE_KEY')
  t.match(stderr, '/auth/status')
  t.notMatch(stderr, STACK_FRAME)
})

t.test('with a key the gateway refuses (revoked, or never made): one line with its answer', async (t) => {
  const stack = await startStack(t, { memory: true })
  const { code, stderr } = await runScript({ GEMGATE_URL: stack.url, GEMGATE_KEY: `gk_${randomBytes(32).toString('base64url')}` })
  t.not(code, 0)
  t.equal(stderr.trim().split('\n').length, 1, 'one line', { stderr })
  t.match(stderr, '401')
  t.notMatch(stderr, STACK_FRAME)
})

t.test('with the gateway away: one line naming the URL', async (t) => {
  const { code, stderr } = await runScript({ GEMGATE_URL: 'http://127.0.0.1:9', GEMGATE_KEY: 'gk_whatever' })
  t.not(code, 0)
  t.equal(stderr.trim().split('\n').length, 1, 'one line', { stderr })
  t.match(stderr, 'http://127.0.0.1:9')
  t.notMatch(stderr, STACK_FRAME)
})
