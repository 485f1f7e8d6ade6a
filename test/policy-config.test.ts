import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import t from 'tap'
import { ConfigError, loadConfig } from '../src/config/load.js'
import { buildGateway } from './helpers/build.js'

const ENV = {
  PUBLIC_URL: 'https://gemgate.example.com',
  OIDC_CLIENT_ID: 'client-id',
  OIDC_CLIENT_SECRET: 'client-secret-value-do-not-print',
  COOKIE_SECRETS: randomBytes(32).toString('base64url'),
  TOKEN_ENCRYPTION_KEYS: randomBytes(32).toString('base64'),
  ALLOWED_EMAIL_DOMAINS: 'example.com',
}

/** Mistakes, each in its own place. */
const BAD_POLICY = `policy:
  - name: team-a
    match: { emails: [alice@example.com], teams: [x] }
    requests_per_minute: ten
  - default: true
    models: ['gemini 3 pro']
  - name: latecomer
    match: { domains: [example.com] }
    usd_per_day: -5
    tokens_per_dya: 100
prices:
  gemini-x:
    - { from: 'yesterday', input: 1, output: 2 }
    - { from: '2026-01-01', input: 1, output: 2, above_200k: { input: 2, outptu: 3 } }
`

const EXPECTED = [
  /^policy rule 1 \(team-a\): match: unknown key teams; the keys are emails, domains, groups$/,
  /^policy rule 1 \(team-a\): requests_per_minute: must be a whole number \(got "ten"\)$/,
  /^policy rule 2: default: the default rule must be the last one$/,
  /^policy rule 2: models\.0: each entry must be a model name or glob, e\.g\. gemini-\*-flash\* \(got "gemini 3 pro"\)$/,
  /^policy rule 3 \(latecomer\): unknown key tokens_per_dya; the keys are name, match, default, models, requests_per_minute/,
  /^policy rule 3 \(latecomer\): usd_per_day: must be at least 0 \(got -5\)$/,
  /^policy rule 3 \(latecomer\): the last rule must be `default: true`/,
  /^prices\.gemini-x row 1: from: must be a date, e\.g\. 2026-12-01 \(got "yesterday"\)$/,
  /^prices\.gemini-x row 2: above_200k: unknown key outptu; the keys are input, output, cached_input, audio_input, cached_audio_input$/,
  /^prices\.gemini-x row 2: above_200k\.output: must be a number of US dollars$/,
]

function problems (env: Record<string, string>, cwd: string): string[] {
  try {
    loadConfig({ env: { ...ENV, ...env }, cwd })
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  throw new Error('loadConfig accepted the policy')
}

t.test('a bad policy file: one clear line per mistake', async (t) => {
  const dir = t.testdir({ 'policy.yaml': BAD_POLICY })
  const lines = problems({ POLICY_FILE: 'policy.yaml' }, dir)
  t.equal(lines.length, EXPECTED.length, { lines })
  for (const pattern of EXPECTED) t.ok(lines.some((line) => pattern.test(line)), `a line like ${String(pattern)}`, { lines })
})

t.test('the same rules inline in the config file are checked the same way', async (t) => {
  const dir = t.testdir({ 'gemgate.yaml': BAD_POLICY })
  const lines = problems({ GEMGATE_CONFIG: 'gemgate.yaml' }, dir)
  t.equal(lines.length, EXPECTED.length, { lines })
})

t.test('a missing or malformed policy file, and a good one', async (t) => {
  const dir = t.testdir({
    'list.yaml': '- { default: true, tokens_per_day: 1000, models: ["gemini-3-*"] }\n',
    'odd.yaml': 'rules: []\n',
  })
  t.match(problems({ POLICY_FILE: 'missing.yaml' }, dir), [/^POLICY_FILE \(policyFile\): cannot read missing\.yaml \(ENOENT\)/])
  t.match(problems({ POLICY_FILE: 'odd.yaml' }, dir), [/may hold only policy: and prices:, not rules/])
  t.match(problems({ POLICY_FILE: 'list.yaml', POLICY_TIMEZONE: 'Mars/Olympus' }, dir), [/^POLICY_TIMEZONE \(policyTimezone\): must be an IANA time zone/])
  const config = loadConfig({ env: { ...ENV, POLICY_FILE: 'list.yaml', POLICY_TIMEZONE: 'Europe/Berlin' }, cwd: dir })
  t.same(config.policy, [{ default: true, tokens_per_day: 1000, models: ['gemini-3-*'] }])
  t.equal(config.policyOnStoreFailure, 'local', 'the default failure mode')
})

t.test('the built gateway exits 78 with the lines on a bad policy', async (t) => {
  const main = await buildGateway(t, 'policy')
  const dir = t.testdir({ 'policy.yaml': BAD_POLICY })
  const child = spawn(process.execPath, [main], { cwd: dir, env: { ...ENV, POLICY_FILE: 'policy.yaml' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 78, 'EX_CONFIG')
  const lines = stderr.trim().split('\n').slice(1)
  t.equal(lines.length, EXPECTED.length, { stderr })
})
