import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ConfigError, loadConfig, type ConfigSources } from '../src/config/load.js'
import type { Config } from '../src/config/schema.js'
import { buildGateway } from './helpers/build.js'

const COOKIE_SECRET = 'cookie-secret-that-is-long-enough-0001'
const ENCRYPTION_KEY = randomBytes(32).toString('base64')
const CLIENT_SECRET = 'client-secret-value-do-not-print'

/** The smallest environment that makes a valid config. */
const VALID_ENV = Object.freeze({
  PUBLIC_URL: 'https://gemgate.example.com',
  OIDC_CLIENT_ID: 'client-id',
  OIDC_CLIENT_SECRET: CLIENT_SECRET,
  COOKIE_SECRETS: COOKIE_SECRET,
  TOKEN_ENCRYPTION_KEYS: ENCRYPTION_KEY,
  ALLOWED_EMAIL_DOMAINS: 'example.com',
})

/** An empty working directory, so no config/gemgate.yaml is picked up by accident. */
const EMPTY_DIR = t.testdir()

function load (sources: ConfigSources = {}): Config {
  return loadConfig({ cwd: EMPTY_DIR, ...sources, env: sources.env ?? VALID_ENV })
}

/** The problem lines of the ConfigError that loading throws. */
function problems (sources: ConfigSources): string[] {
  try {
    load(sources)
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  throw new Error('loadConfig accepted the configuration')
}

/** The one line about `key` (an env var or a dotted YAML key); fails when there is not exactly one. */
function lineAbout (t: Test, lines: string[], key: string): string {
  const matching = lines.filter((line) => line.startsWith(`${key} `) || line.startsWith(`${key}:`))
  t.equal(matching.length, 1, `exactly one line about ${key}`, { lines })
  return matching[0] ?? ''
}


t.test('built-in defaults fill everything optional', async (t) => {
  const config = load()
  t.equal(config.port, 8080)
  t.equal(config.host, '0.0.0.0')
  t.equal(config.logLevel, 'info')
  t.equal(config.trustProxy, false)
  t.equal(config.oidc.issuer, 'https://accounts.google.com')
  t.equal(config.oidc.scopes, 'openid email profile https://www.googleapis.com/auth/generative-language.retriever')
  t.equal(config.upstream.url, 'https://generativelanguage.googleapis.com')
  t.equal(config.refreshAheadSeconds, 300)
  t.equal(config.sessionTtlSeconds, 604_800)
  t.same(config.redis, {}, 'no Redis setting: the in-memory store')
  t.same(config.cookieSecrets, [COOKIE_SECRET])
  t.same(config.allowedEmailDomains, ['example.com'])
})

t.test('a YAML file overrides defaults and the environment overrides the file', async (t) => {
  const dir = t.testdir({
    'flag.yaml': 'port: 9001\nlogLevel: debug\noidc:\n  scopes: openid email\n',
    'env.yaml': 'port: 9002\n',
    config: { 'gemgate.yaml': 'port: 9003\n' },
  })
  const flag = join(dir, 'flag.yaml')

  t.test('--config PATH', async (t) => {
    const config = loadConfig({ cwd: dir, argv: ['--config', flag], env: VALID_ENV })
    t.equal(config.port, 9001)
    t.equal(config.logLevel, 'debug')
    t.equal(config.oidc.scopes, 'openid email', 'nested keys')
    t.equal(config.oidc.clientId, 'client-id', 'the environment still fills the rest of the section')
    t.equal(config.host, '0.0.0.0', 'defaults still fill what neither sets')
  })
  t.test('--config=PATH, relative to the working directory', async (t) => {
    t.equal(loadConfig({ cwd: dir, argv: ['--config=flag.yaml'], env: VALID_ENV }).port, 9001)
  })
  t.test('GEMGATE_CONFIG', async (t) => {
    t.equal(loadConfig({ cwd: dir, env: { ...VALID_ENV, GEMGATE_CONFIG: 'env.yaml' } }).port, 9002)
  })
  t.test('config/gemgate.yaml in the working directory when nothing names a file', async (t) => {
    t.equal(loadConfig({ cwd: dir, env: VALID_ENV }).port, 9003)
  })
  t.test('--config wins over GEMGATE_CONFIG, which wins over config/gemgate.yaml', async (t) => {
    t.equal(loadConfig({ cwd: dir, argv: ['--config', flag], env: { ...VALID_ENV, GEMGATE_CONFIG: 'env.yaml' } }).port, 9001)
    t.equal(loadConfig({ cwd: dir, env: { ...VALID_ENV, GEMGATE_CONFIG: 'env.yaml' } }).port, 9002)
  })
  t.test('environment variables win over the file, nested ones too', async (t) => {
    const config = loadConfig({ cwd: dir, argv: ['--config', flag], env: { ...VALID_ENV, PORT: '9100', OIDC_SCOPES: 'openid' } })
    t.equal(config.port, 9100)
    t.equal(config.oidc.scopes, 'openid')
    t.equal(config.logLevel, 'debug', 'what the environment does not set comes from the file')
  })
  t.test('an empty environment variable does not blank out the file', async (t) => {
    t.equal(loadConfig({ cwd: dir, argv: ['--config', flag], env: { ...VALID_ENV, PORT: '' } }).port, 9001)
  })
  t.test('a file named but missing is reported against whoever named it', async (t) => {
    const [line, ...rest] = problems({ cwd: dir, argv: ['--config', 'missing.yaml'] })
    t.same(rest, [])
    t.match(line, /^--config: cannot read .*missing\.yaml \(ENOENT\), e\.g\. --config /)
    const [envLine] = problems({ cwd: dir, env: { ...VALID_ENV, GEMGATE_CONFIG: 'missing.yaml' } })
    t.match(envLine, /^GEMGATE_CONFIG: cannot read .*missing\.yaml/)
  })
  t.test('--config without a path', async (t) => {
    t.match(problems({ cwd: dir, argv: ['--config'] }), [/^--config: needs a path, e\.g\. --config /])
  })
  t.test('secrets and lists may be written in YAML', async (t) => {
    const yaml = t.testdir({ 'g.yaml': `cookieSecrets:\n  - ${COOKIE_SECRET}\n  - ${COOKIE_SECRET}-old\nallowedEmails: [alice@example.com]\n` })
    const { COOKIE_SECRETS: _unused, ALLOWED_EMAIL_DOMAINS: _unused2, ...env } = VALID_ENV
    const config = loadConfig({ cwd: yaml, argv: ['--config', 'g.yaml'], env })
    t.same(config.cookieSecrets, [COOKIE_SECRET, `${COOKIE_SECRET}-old`])
    t.same(config.allowedEmails, ['alice@example.com'])
  })
})

t.test('*_FILE secrets are read from files', async (t) => {
  const dir = t.testdir({
    'client-secret': `${CLIENT_SECRET}-from-file\n`,
    'cookie-secrets': `${COOKIE_SECRET}-a,${COOKIE_SECRET}-b\n`,
    'keys': `${ENCRYPTION_KEY}\n`,
  })
  const { OIDC_CLIENT_SECRET: _a, COOKIE_SECRETS: _b, TOKEN_ENCRYPTION_KEYS: _c, ...rest } = VALID_ENV
  const env = {
    ...rest,
    OIDC_CLIENT_SECRET_FILE: join(dir, 'client-secret'),
    COOKIE_SECRETS_FILE: 'cookie-secrets',
    TOKEN_ENCRYPTION_KEYS_FILE: join(dir, 'keys'),
  }

  t.test('values come from the files, trailing newline removed; relative paths from the working directory', async (t) => {
    const config = loadConfig({ cwd: dir, env })
    t.equal(config.oidc.clientSecret, `${CLIENT_SECRET}-from-file`)
    t.same(config.cookieSecrets, [`${COOKIE_SECRET}-a`, `${COOKIE_SECRET}-b`])
    t.same(config.tokenEncryptionKeys, [ENCRYPTION_KEY])
  })

  t.test('a missing file is one line naming the _FILE variable, not also "is required"', async (t) => {
    const lines = problems({ cwd: dir, env: { ...env, OIDC_CLIENT_SECRET_FILE: join(dir, 'nope') } })
    t.equal(lines.length, 1, 'one line', { lines })
    t.match(lines[0], /^OIDC_CLIENT_SECRET_FILE: cannot read .*nope \(ENOENT\), e\.g\. OIDC_CLIENT_SECRET_FILE=\//)
  })

  t.test('a directory instead of a file is reported', async (t) => {
    const lines = problems({ cwd: dir, env: { ...env, COOKIE_SECRETS_FILE: dir } })
    t.match(lines, [/^COOKIE_SECRETS_FILE: cannot read .* \(EISDIR\)/])
  })

  t.test('a secret read from a file is validated like any other, without printing it', async (t) => {
    const short = t.testdir({ secret: 'tiny-cookie-secret\n' })
    const lines = problems({ cwd: short, env: { ...env, COOKIE_SECRETS_FILE: 'secret' } })
    t.match(lineAbout(t, lines, 'COOKIE_SECRETS'), /32 bytes/)
    t.notMatch(lines.join('\n'), 'tiny-cookie-secret')
  })
})

t.test('each bad setting gets its own line naming the key and a good example', async (t) => {
  t.test('YAML port: "abc"', async (t) => {
    const dir = t.testdir({ 'g.yaml': 'port: "abc"\n' })
    const lines = problems({ cwd: dir, argv: ['--config', 'g.yaml'] })
    t.equal(lines.length, 1, 'only the bad key', { lines })
    const line = lineAbout(t, lines, 'PORT')
    t.match(line, 'port')
    t.match(line, 'must be a whole number')
    t.match(line, '"abc"', 'says what it got (not a secret)')
    t.match(line, 'e.g. PORT=8080')
  })

  t.test('unknown YAML keys, top level and nested', async (t) => {
    const dir = t.testdir({
      'g.yaml': [
        'prot: 8080',
        'bogus: 1',
        'PUBLIC_URL: https://gemgate.example.com',
        'oidc:',
        `  clientSecrit: ${CLIENT_SECRET}-in-yaml`,
        'redis:',
        '  uri: redis://redis:6379',
      ].join('\n'),
    })
    const lines = problems({ cwd: dir, argv: ['--config', 'g.yaml'] })
    t.equal(lines.length, 5, 'one line per unknown key', { lines })
    t.match(lineAbout(t, lines, 'prot'), /unknown setting; did you mean port\? e\.g\. port: 8080/)
    t.match(lineAbout(t, lines, 'oidc.clientSecrit'), /unknown setting; did you mean oidc\.clientSecret\? e\.g\. oidc\.clientSecret: /)
    t.match(lineAbout(t, lines, 'redis.uri'), /did you mean redis\.url\? e\.g\. redis\.url: redis:\/\//)
    t.match(lineAbout(t, lines, 'PUBLIC_URL'), /did you mean publicUrl\? e\.g\. publicUrl: https:\/\//, 'env-var spelling in YAML')
    const bogus = lineAbout(t, lines, 'bogus')
    t.match(bogus, 'unknown setting')
    t.match(bogus, /publicUrl/, 'lists the keys that exist there')
    t.notMatch(lines.join('\n'), CLIENT_SECRET, 'the value under a misspelt secret key is not printed')
  })

  t.test('a cookie secret shorter than 32 bytes', async (t) => {
    const secret = 'short-cookie-secret-xyz'
    const lines = problems({ env: { ...VALID_ENV, COOKIE_SECRETS: `${COOKIE_SECRET},${secret}` } })
    t.equal(lines.length, 1, { lines })
    const line = lineAbout(t, lines, 'COOKIE_SECRETS')
    t.match(line, 'at least 32 bytes')
    t.match(line, 'make one with: openssl rand -base64 32')
    t.notMatch(line, secret)
    t.notMatch(line, COOKIE_SECRET, 'not even the good one')
  })

  t.test('two bad entries in one list are still one line', async (t) => {
    const lines = problems({ env: { ...VALID_ENV, COOKIE_SECRETS: 'short-one,short-two', ALLOWED_EMAILS: ' , ' } })
    t.equal(lines.length, 1, { lines })
    lineAbout(t, lines, 'COOKIE_SECRETS')
  })

  t.test('an encryption key that is not 32 bytes of base64', async (t) => {
    for (const key of [Buffer.alloc(16, 9).toString('base64'), Buffer.alloc(33, 9).toString('base64'), 'not base64 at all, but long enough to pass for it!!']) {
      const lines = problems({ env: { ...VALID_ENV, TOKEN_ENCRYPTION_KEYS: `${ENCRYPTION_KEY},${key}` } })
      const line = lineAbout(t, lines, 'TOKEN_ENCRYPTION_KEYS')
      t.match(line, '32 random bytes in base64')
      t.match(line, 'make one with: openssl rand -base64 32')
      t.notMatch(line, key)
      t.notMatch(line, ENCRYPTION_KEY)
    }
  })

  t.test('several at once: one line each, secrets never printed', async (t) => {
    const redisUrl = 'http://:redis-password-123@redis:6379'
    const lines = problems({
      env: {
        ...VALID_ENV,
        PORT: 'abc',
        COOKIE_SECRETS: 'short-secret-1',
        TOKEN_ENCRYPTION_KEYS: 'c2hvcnQta2V5LXZhbHVl',
        OIDC_CLIENT_SECRET: '   ',
        REDIS_URL: redisUrl,
      },
    })
    t.equal(lines.length, 5, { lines })
    for (const key of ['PORT', 'COOKIE_SECRETS', 'TOKEN_ENCRYPTION_KEYS', 'OIDC_CLIENT_SECRET', 'REDIS_URL']) lineAbout(t, lines, key)
    const text = lines.join('\n')
    for (const secret of ['short-secret-1', 'c2hvcnQta2V5LXZhbHVl', 'redis-password-123']) t.notMatch(text, secret)
    let message = ''
    try { load({ env: { ...VALID_ENV, PORT: 'abc', COOKIE_SECRETS: 'short-secret-1' } }) } catch (error) { message = (error as Error).message }
    t.equal(message.split('\n').length, 3, 'the thrown message is a header and one line per problem')
  })
})

t.test('secrets that are examples or guessable are refused, without printing them', async (t) => {
  const documentedKey = 'q3Jx0cM1pW8vX4Zb6n2YtKe9RfUa7LhGdSsNw5oTiEc='
  const cases: Array<[string, string]> = [
    ['COOKIE_SECRETS', 'a-random-string-of-at-least-32-bytes'],
    ['COOKIE_SECRETS', 'x'.repeat(40)],
    ['COOKIE_SECRETS', 'changeme-changeme-changeme-changeme'],
    ['TOKEN_ENCRYPTION_KEYS', documentedKey],
    ['TOKEN_ENCRYPTION_KEYS', Buffer.alloc(32, 7).toString('base64')],
  ]
  for (const [name, value] of cases) {
    const line = lineAbout(t, problems({ env: { ...VALID_ENV, [name]: value } }), name)
    t.match(line, /example|guessable/, `${name}=${value.slice(0, 12)}… is refused`)
    t.match(line, 'openssl rand -base64 32', 'says how to make a good one')
    t.notMatch(line, value)
  }
})

t.test('a shell command written as a secret is named as such, and no example is one', async (t) => {
  for (const name of ['COOKIE_SECRETS', 'TOKEN_ENCRYPTION_KEYS']) {
    const line = lineAbout(t, problems({ env: { ...VALID_ENV, [name]: '$(openssl rand -base64 32)' } }), name)
    t.match(line, /shell/, `${name}: the line says .env and YAML run no shell`)
  }
  const { TOKEN_ENCRYPTION_KEYS: _key, ...withoutKey } = VALID_ENV
  t.notMatch(lineAbout(t, problems({ env: withoutKey }), 'TOKEN_ENCRYPTION_KEYS'), '$(', 'the message gives no shell syntax to paste')
})

t.test('values nobody could then sign in with are refused', async (t) => {
  t.match(lineAbout(t, problems({ env: { ...VALID_ENV, ALLOWED_EMAIL_DOMAINS: '@example.com' } }), 'ALLOWED_EMAIL_DOMAINS'), 'domain')
  t.match(lineAbout(t, problems({ env: { ...VALID_ENV, ALLOWED_EMAIL_DOMAINS: 'example.com,https://example.org' } }), 'ALLOWED_EMAIL_DOMAINS'), 'domain')
  t.match(lineAbout(t, problems({ env: { ...VALID_ENV, ALLOWED_EMAILS: 'alice@example.com,notanemail' } }), 'ALLOWED_EMAILS'), 'email address')
  t.match(lineAbout(t, problems({ env: { ...VALID_ENV, PUBLIC_URL: 'https://gemgate.example.com/gateway' } }), 'PUBLIC_URL'), 'no path')
  t.match(lineAbout(t, problems({ env: { ...VALID_ENV, PUBLIC_URL: 'https://gemgate.example.com/?x=1' } }), 'PUBLIC_URL'), 'no path')
  t.equal(load({ env: { ...VALID_ENV, PUBLIC_URL: 'https://gemgate.example.com/' } }).publicUrl, 'https://gemgate.example.com', 'a trailing slash is fine')
  t.same(load({ env: { ...VALID_ENV, ALLOWED_EMAIL_DOMAINS: '*' } }).allowedEmailDomains, ['*'])
})

t.test('an unknown command-line argument is refused, with the likely meaning', async (t) => {
  t.match(lineAbout(t, problems({ argv: ['--confg', 'gemgate.yaml'] }), '--confg'), 'did you mean --config?')
  t.match(lineAbout(t, problems({ argv: ['gemgate.yaml'] }), 'gemgate.yaml'), 'unknown argument')
})

t.test('UPSTREAM_CA_FILE must be a readable PEM bundle', async (t) => {
  const dir = t.testdir({ 'not-pem.txt': 'hello' })
  t.match(lineAbout(t, problems({ env: { ...VALID_ENV, UPSTREAM_CA_FILE: join(dir, 'missing.pem') } }), 'UPSTREAM_CA_FILE'), /cannot read .*missing\.pem \(ENOENT\)/)
  t.match(lineAbout(t, problems({ env: { ...VALID_ENV, UPSTREAM_CA_FILE: join(dir, 'not-pem.txt') } }), 'UPSTREAM_CA_FILE'), 'no PEM certificate')
})

t.test('http:// is refused off loopback and accepted on it', async (t) => {
  for (const name of ['OIDC_ISSUER', 'PUBLIC_URL', 'UPSTREAM_URL']) {
    for (const url of ['http://gemgate.example.com', 'http://10.0.0.5:8080', 'http://localhost.example.com', 'http://127.0.0.1.nip.io']) {
      const line = lineAbout(t, problems({ env: { ...VALID_ENV, [name]: url } }), name)
      t.match(line, 'must use https://', `${name}=${url}`)
    }
    for (const url of ['http://127.0.0.1:8080', 'http://localhost:8080', 'http://[::1]:8080', 'http://127.8.9.10']) {
      const config = load({ env: { ...VALID_ENV, [name]: url } })
      const value = name === 'OIDC_ISSUER' ? config.oidc.issuer : name === 'PUBLIC_URL' ? config.publicUrl : config.upstream.url
      t.equal(value, url, `${name}=${url} accepted`)
    }
    for (const url of ['ftp://example.com', 'not a url', 'http://']) {
      t.match(lineAbout(t, problems({ env: { ...VALID_ENV, [name]: url } }), name), 'must be an absolute URL', `${name}=${url}`)
    }
  }
  t.equal(load({ env: { ...VALID_ENV, PUBLIC_URL: 'https://gemgate.example.com/' } }).publicUrl, 'https://gemgate.example.com', 'a trailing slash is dropped')
})

t.test('OIDC_AUTH_PARAMS defaults to offline access only for Google', async (t) => {
  t.equal(load().oidc.authParams, 'access_type=offline&prompt=consent')
  t.equal(load({ env: { ...VALID_ENV, OIDC_ISSUER: 'https://accounts.google.com/' } }).oidc.authParams, 'access_type=offline&prompt=consent')
  t.equal(load({ env: { ...VALID_ENV, OIDC_ISSUER: 'https://login.example.com' } }).oidc.authParams, '')
  t.equal(load({ env: { ...VALID_ENV, OIDC_AUTH_PARAMS: 'prompt=select_account' } }).oidc.authParams, 'prompt=select_account', 'explicit wins for Google')
  t.equal(load({ env: { ...VALID_ENV, OIDC_ISSUER: 'https://login.example.com', OIDC_AUTH_PARAMS: 'audience=x' } }).oidc.authParams, 'audience=x')
})

t.test('the result is frozen all the way down', async (t) => {
  const config = load()
  for (const part of [config, config.oidc, config.upstream, config.redis, config.app, config.cookieSecrets, config.allowedEmailDomains]) t.ok(Object.isFrozen(part))
  t.throws(() => { (config as { port: number }).port = 1 }, TypeError)
  t.throws(() => { (config.oidc as { clientId: string }).clientId = 'other' }, TypeError)
  t.throws(() => { (config.cookieSecrets as string[]).push('another-secret-that-is-long-enough-x') }, TypeError)
  t.equal(config.port, 8080)
})

t.test('the built gateway refuses to start on bad configuration', async (t) => {
  const main = await buildGateway(t, 'config')

  async function run (args: string[], cwd: string): Promise<{ code: number | null, stderr: string }> {
    const child = spawn(process.execPath, [main, ...args], { cwd, env: {}, stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    const [code] = await once(child, 'exit') as [number | null]
    return { code, stderr }
  }

  t.test('an empty environment: exit 78 and one line per missing required setting', async (t) => {
    const { code, stderr } = await run([], t.testdir())
    t.equal(code, 78, 'EX_CONFIG')
    const lines = stderr.trim().split('\n').slice(1).map((line) => line.replace(/^\s*-\s*/, ''))
    const required = ['PUBLIC_URL', 'OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET', 'COOKIE_SECRETS', 'TOKEN_ENCRYPTION_KEYS', 'ALLOWED_EMAIL_DOMAINS']
    t.equal(lines.length, required.length, 'nothing else', { stderr })
    for (const key of required) t.match(lineAbout(t, lines, key), /is required.*(e\.g\. |make one with: )/)
  })

  t.test('a bad YAML file via --config: exit 78 and one line per bad key', async (t) => {
    const dir = t.testdir({
      'bad.yaml': [
        'port: "abc"',
        'publicUrl: http://gemgate.example.com',
        'colour: blue',
        'oidc:',
        '  clientId: client-id',
        `  clientSecret: ${CLIENT_SECRET}`,
        '  issuer: https://accounts.google.com',
        '  scope: openid',
        'cookieSecrets: [short-secret]',
        `tokenEncryptionKeys: ["${ENCRYPTION_KEY}"]`,
        'allowedEmailDomains: [example.com]',
      ].join('\n'),
    })
    const { code, stderr } = await run(['--config', 'bad.yaml'], dir)
    t.equal(code, 78)
    const lines = stderr.trim().split('\n').slice(1).map((line) => line.replace(/^\s*-\s*/, ''))
    t.equal(lines.length, 5, { stderr })
    t.match(lineAbout(t, lines, 'PORT'), 'e.g. PORT=8080')
    t.match(lineAbout(t, lines, 'PUBLIC_URL'), 'must use https://')
    t.match(lineAbout(t, lines, 'colour'), 'unknown setting')
    t.match(lineAbout(t, lines, 'oidc.scope'), 'did you mean oidc.scopes?')
    t.match(lineAbout(t, lines, 'COOKIE_SECRETS'), 'at least 32 bytes')
    t.notMatch(stderr, 'short-secret')
    t.notMatch(stderr, CLIENT_SECRET)
  })
})

t.test('administrators: ADMIN_EMAILS, ADMIN_GROUPS (needs OIDC_GROUPS_CLAIM), ADMIN_REAUTH_SECONDS', async (t) => {
  const defaults = load()
  t.same([defaults.adminEmails, defaults.adminGroups, defaults.adminReauthSeconds], [[], [], 900], 'nobody administers by default')
  const config = load({ env: { ...VALID_ENV, ADMIN_EMAILS: 'ops@example.com', ADMIN_GROUPS: 'gemgate-admins, ops', OIDC_GROUPS_CLAIM: 'groups', ADMIN_REAUTH_SECONDS: '300' } })
  t.same([config.adminEmails, config.adminGroups, config.adminReauthSeconds], [['ops@example.com'], ['gemgate-admins', 'ops'], 300])
  t.match(lineAbout(t, problems({ env: { ...VALID_ENV, ADMIN_GROUPS: 'ops' } }), 'ADMIN_GROUPS'), 'needs OIDC_GROUPS_CLAIM')
  t.match(lineAbout(t, problems({ env: { ...VALID_ENV, ADMIN_EMAILS: 'ops' } }), 'ADMIN_EMAILS'), 'must be an email address')
})
