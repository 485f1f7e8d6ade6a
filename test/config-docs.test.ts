import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { parse as parseYaml } from 'yaml'
import {
  GENERATED_FILES, TABLE_END, TABLE_START, renderAll, renderConfigTable, renderEnvExample, renderExampleYaml, replaceBetweenMarkers,
} from '../scripts/config-docs.js'
import { loadConfig } from '../src/config/load.js'
import { SETTINGS } from '../src/config/schema.js'

const ROOT = resolve(import.meta.dirname, '..')
const REGENERATE = 'out of date with src/config/schema.ts: run `npm run docs:config` and commit the result'

function read (path: string): string {
  return readFileSync(resolve(ROOT, path), 'utf8')
}

/** Fresh values for the secrets, which no example file holds. */
function secrets (): Record<string, string> {
  return {
    OIDC_CLIENT_SECRET: randomBytes(16).toString('hex'),
    COOKIE_SECRETS: randomBytes(32).toString('base64url'),
    TOKEN_ENCRYPTION_KEYS: randomBytes(32).toString('base64'),
  }
}

/** The `NAME=value` lines of an env file, as Docker's env_file and `node --env-file` read them. */
function parseEnvFile (text: string): Record<string, string> {
  const lines = text.split('\n').filter((line) => /^[A-Z][A-Z0-9_]*=/.test(line))
  return Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]))
}

t.test('the generated files match the schema', async (t) => {
  const expected = renderAll(read(GENERATED_FILES.reference))
  for (const [path, content] of Object.entries(expected)) {
    t.equal(read(path), content, `${path} is ${REGENERATE}`)
  }
})

t.test('docs/configuration.md holds the table between one pair of markers', async (t) => {
  const reference = read(GENERATED_FILES.reference)
  t.equal(reference.split(TABLE_START).length, 2, `one ${TABLE_START}`)
  t.equal(reference.split(TABLE_END).length, 2, `one ${TABLE_END}`)
  for (const entry of SETTINGS) t.match(reference, `| \`${entry.env}\` | \`${entry.path.join('.')}\` |`, `docs/configuration.md documents ${entry.env}`)
})

t.test('the table has one row per setting and escapes pipes', async (t) => {
  const table = renderConfigTable()
  t.equal(table.split('\n').length, SETTINGS.length + 3, 'header, rule, GEMGATE_CONFIG and one row per setting')
  const piped = renderConfigTable([{ env: 'X', path: ['x'], example: 'a|b', description: 'one | two', required: false, defaultValue: undefined }])
  t.match(piped, 'one \\| two')
  t.notMatch(piped.split('\n').at(-1)!, /[^\\]\|[^ ]/, 'no bare pipe inside a cell')
})

t.test('replaceBetweenMarkers keeps the text around the markers and insists on them', async (t) => {
  const document = `intro\n${TABLE_START}\nold\n${TABLE_END}\noutro\n`
  t.equal(replaceBetweenMarkers(document, 'new'), `intro\n${TABLE_START}\nnew\n${TABLE_END}\noutro\n`)
  t.throws(() => replaceBetweenMarkers('no markers', 'new'), /needs exactly one/)
  t.throws(() => replaceBetweenMarkers(`${TABLE_END}${TABLE_START}`, 'new'), /needs exactly one/)
  t.throws(() => replaceBetweenMarkers(`${TABLE_START}${TABLE_START}${TABLE_END}`, 'new'), /needs exactly one/)
})

t.test('.env.example lists every variable, and every secret file variant', async (t) => {
  const text = renderEnvExample()
  for (const entry of SETTINGS) {
    t.match(text, new RegExp(`^(# )?${entry.env}=`, 'm'), `${entry.env} is listed`)
    if (entry.secret === true) t.match(text, new RegExp(`^# ${entry.env}_FILE=/run/secrets/`, 'm'), `${entry.env}_FILE is shown`)
  }
})

/** What a reader fills in: every required value, the secrets freshly made. */
function filledIn (): Record<string, string> {
  return {
    PUBLIC_URL: 'https://gemgate.example.com',
    OIDC_CLIENT_ID: '1234-abc.apps.googleusercontent.com',
    ALLOWED_EMAIL_DOMAINS: 'example.com',
    ...secrets(),
  }
}

t.test('.env.example, with its required values filled in, is a valid configuration', async (t) => {
  const env = { ...parseEnvFile(read(GENERATED_FILES.envExample)), ...filledIn() }
  const config = loadConfig({ argv: [], env, cwd: t.testdir() })
  t.equal(config.publicUrl, 'https://gemgate.example.com')
  t.same(config.allowedEmailDomains, ['example.com'])
})

t.test('.env.example as shipped leaves every required value empty, so a half-filled copy stops at start', async (t) => {
  const env = parseEnvFile(read(GENERATED_FILES.envExample))
  for (const entry of SETTINGS.filter((entry) => entry.required)) t.equal(env[entry.env], '', `${entry.env} is empty`)
  const error = t.throws(() => loadConfig({ argv: [], env, cwd: t.testdir() })) as { problems?: string[] }
  for (const name of Object.keys(filledIn())) {
    t.ok(error.problems?.some((line) => line.startsWith(`${name} `)), `${name} is reported`)
  }
})

t.test('config/gemgate.example.yaml loads, with the required values from the environment', async (t) => {
  const path = resolve(ROOT, GENERATED_FILES.exampleYaml)
  const config = loadConfig({ argv: ['--config', path], env: filledIn(), cwd: t.testdir() })
  t.equal(config.publicUrl, 'https://gemgate.example.com')
  t.equal(config.port, 8080, 'commented keys keep their defaults')
})

t.test('the example YAML keeps every key at its nested place', async (t) => {
  const text = renderExampleYaml()
  for (const entry of SETTINGS) {
    const indent = '  '.repeat(entry.path.length - 1)
    t.match(text, new RegExp(`^${indent}(# )?${entry.path.at(-1)}: `, 'm'), `${entry.path.join('.')} is documented`)
  }
  // Uncommenting every commented key line must still give valid YAML of the same shape.
  const keys = new Set(SETTINGS.flatMap((entry) => entry.path))
  const keyLine = new RegExp(`^(\\s*)# (?=(?:${[...keys].join('|')}):( |$))`, 'gm')
  const uncommented = text.replace(keyLine, '$1')
  const document = parseYaml(uncommented) as Record<string, unknown>
  for (const entry of SETTINGS) {
    const value = entry.path.reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], document)
    t.not(value, undefined, `${entry.path.join('.')} has a value once uncommented`)
  }
})

t.test('the CLI reports the files as current', async (t) => {
  const run = promisify(execFile)
  const { stderr } = await run(process.execPath, ['--import', './scripts/register-ts.mjs', 'scripts/config-docs.ts', '--check'], {
    cwd: ROOT, timeout: 60_000, env: { PATH: process.env.PATH ?? '' },
  })
  t.equal(stderr, '')
})
