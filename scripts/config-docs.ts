import { readFileSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { stringify } from 'yaml'
import { DEFAULT_CONFIG_PATH } from '../src/config/load.js'
import { SETTINGS, type SettingEntry } from '../src/config/schema.js'

/** Marks where the generated configuration table starts in docs/configuration.md. */
export const TABLE_START = '<!-- config:start -->'
/** Marks where the generated configuration table ends in docs/configuration.md. */
export const TABLE_END = '<!-- config:end -->'

/**
 * Settings of which at least one must be set. The schema checks this in a refinement that
 * SETTINGS cannot see, so it is repeated here; the docs test proves the example files valid.
 */
export const REQUIRED_ONE_OF: ReadonlyArray<readonly string[]> = [['ALLOWED_EMAIL_DOMAINS', 'ALLOWED_EMAILS']]

/** The generated files, relative to the repository root. */
export const GENERATED_FILES = {
  reference: 'docs/configuration.md',
  envExample: '.env.example',
  exampleYaml: 'config/gemgate.example.yaml',
} as const

const GENERATED_NOTE = 'Generated from src/config/schema.ts by `npm run docs:config`; change the schema, not this file.'

type Requirement = { kind: 'required' } | { kind: 'one-of', group: readonly string[] } | { kind: 'optional' }

function requirement (entry: SettingEntry): Requirement {
  if (entry.required) return { kind: 'required' }
  const group = REQUIRED_ONE_OF.find((names) => names.includes(entry.env))
  return group === undefined ? { kind: 'optional' } : { kind: 'one-of', group }
}

function yamlKey (entry: SettingEntry): string {
  return entry.path.join('.')
}

function hasDefault (entry: SettingEntry): boolean {
  return entry.defaultValue !== undefined && !(Array.isArray(entry.defaultValue) && entry.defaultValue.length === 0)
}

/** A default as an environment value: lists comma-separated, empty lists empty. */
function envValue (value: unknown): string {
  return Array.isArray(value) ? value.join(',') : String(value)
}

function markdownCell (text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ')
}

function markdownDefault (entry: SettingEntry): string {
  if (entry.required) return '—'
  if (entry.defaultValue === undefined) return 'unset'
  if (!hasDefault(entry)) return 'empty'
  return `\`${envValue(entry.defaultValue)}\``
}

function markdownRequired (entry: SettingEntry): string {
  const need = requirement(entry)
  if (need.kind === 'required') return '**yes**'
  if (need.kind === 'one-of') return `one of ${need.group.map((name) => `\`${name}\``).join(', ')}`
  return 'no'
}

/** How the docs point at a good value: the command that makes one, else an example. */
function remedy (entry: SettingEntry): string {
  return entry.generate === undefined ? `E.g. \`${entry.example}\`.` : `Make one with \`${entry.generate}\`.`
}

function markdownMeaning (entry: SettingEntry): string {
  const secret = entry.secret === true ? ` Secret: also read from the file named by \`${entry.env}_FILE\`; never logged.` : ''
  return markdownCell(`${entry.description}${secret} ${remedy(entry)}`)
}

/** The Markdown configuration reference: one row per setting, in schema order. */
export function renderConfigTable (settings: readonly SettingEntry[] = SETTINGS): string {
  const rows = [
    '| env var | YAML key | default | required | meaning |',
    '|---|---|---|---|---|',
    `| \`GEMGATE_CONFIG\` | — | \`${DEFAULT_CONFIG_PATH}\` if present | no | YAML file with these settings as nested keys; \`--config PATH\` wins over it. |`,
    ...settings.map((entry) => `| \`${entry.env}\` | \`${yamlKey(entry)}\` | ${markdownDefault(entry)} | ${markdownRequired(entry)} | ${markdownMeaning(entry)} |`),
  ]
  return rows.join('\n')
}

/** Replaces whatever sits between the config markers of `document` with `content`. */
export function replaceBetweenMarkers (document: string, content: string): string {
  const start = document.indexOf(TABLE_START)
  const end = document.indexOf(TABLE_END)
  if (start === -1 || end === -1 || end < start || document.indexOf(TABLE_START, start + 1) !== -1) {
    throw new Error(`${GENERATED_FILES.reference} needs exactly one ${TABLE_START} followed by ${TABLE_END}`)
  }
  return `${document.slice(0, start + TABLE_START.length)}\n${content}\n${document.slice(end)}`
}

function requiredNames (settings: readonly SettingEntry[]): string {
  const names = settings.filter((entry) => entry.required).map((entry) => entry.env)
  const groups = REQUIRED_ONE_OF.map((group) => `one of ${group.join(' / ')}`)
  return [...names, ...groups].join(', ')
}

/** Whether it is needed and what it is without a value, for the comment above a setting. */
function status (entry: SettingEntry): string {
  const need = requirement(entry)
  const good = entry.generate === undefined ? `e.g. ${entry.example}` : `make one with: ${entry.generate}`
  if (need.kind === 'required') return `Required, ${good}.`
  if (need.kind === 'one-of') return `Required: this or ${need.group.filter((name) => name !== entry.env).join(' / ')}, ${good}.`
  if (hasDefault(entry)) return `Default: ${envValue(entry.defaultValue)}.`
  return Array.isArray(entry.defaultValue) ? 'Default: empty.' : 'Unset by default.'
}

// Required values are left empty, never a sample: a half-filled copy must stop at start with
// one line per missing value, not start and fail at the provider.
function envEntry (entry: SettingEntry): string[] {
  const facts = [status(entry), `YAML: ${yamlKey(entry)}.`]
  if (entry.secret === true) facts.push(`Or ${entry.env}_FILE=/path/to/file.`)
  const line = requirement(entry).kind === 'optional' ? `# ${entry.env}=${entry.example}` : `${entry.env}=`
  return [`# ${entry.description}`, `# ${facts.join(' ')}`, line]
}

/** `.env.example`: every variable, required ones set to a sample or left empty to fill in. */
export function renderEnvExample (settings: readonly SettingEntry[] = SETTINGS): string {
  const secrets = settings.filter((entry) => entry.secret === true)
  const header = [
    '# Gemgate environment. Copy to .env and fill in the required values:',
    '#   cp .env.example .env',
    `# ${GENERATED_NOTE}`,
    '#',
    '# Precedence: built-in defaults < YAML file (--config PATH or GEMGATE_CONFIG) < these variables.',
    '# An empty value counts as unset. A missing or bad value stops the gateway with exit code 78',
    '# and one message per bad key.',
    `# Required, and left empty below for you to fill in: ${requiredNames(settings)}.`,
    '# Values are literal: this file runs no shell. Make each secret with: openssl rand -base64 32',
    '# and paste its output (one per key or cookie secret).',
    '# docker-compose.yml sets REDIS_URL itself.',
    '',
    `# YAML file with the same settings as nested keys. Default: ${DEFAULT_CONFIG_PATH} if present.`,
    `# GEMGATE_CONFIG=${DEFAULT_CONFIG_PATH}`,
  ]
  const footer = [
    '# Docker secrets: each secret above can come from a file instead, named by <NAME>_FILE',
    '# (the file wins over the variable; surrounding whitespace is trimmed), e.g. with compose secrets:',
    ...secrets.map((entry) => `# ${entry.env}_FILE=/run/secrets/${entry.env.toLowerCase()}`),
  ]
  return [header.join('\n'), ...settings.map((entry) => envEntry(entry).join('\n')), footer.join('\n')].join('\n\n') + '\n'
}

/** One YAML scalar or flow list; sample numbers stay numbers. */
function yamlValue (value: unknown, isList: boolean): string {
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return value
  if (typeof value === 'string' && isList) return yamlValue(value.split(',').map((item) => item.trim()), true)
  return stringify(value, { collectionStyle: 'flow', flowCollectionPadding: false, lineWidth: 0 }).trimEnd()
}

function yamlEntry (entry: SettingEntry, indent: string): string[] {
  const facts = [`Env: ${entry.env}.`, status(entry)]
  if (entry.secret === true) facts.push(`Secret: better set through ${entry.env} or ${entry.env}_FILE than here.`)
  const shown = hasDefault(entry) ? entry.defaultValue : entry.example
  if (requirement(entry).kind === 'optional' && shown !== entry.example && envValue(shown) !== entry.example) facts.push(`E.g. ${entry.example}.`)
  const line = `${entry.path.at(-1)!}: ${yamlValue(shown, Array.isArray(entry.defaultValue))}`
  return [`${indent}# ${entry.description}`, `${indent}# ${facts.join(' ')}`, `${indent}# ${line}`]
}

/** The example YAML file: every key nested as in the schema, optional ones commented out. */
export function renderExampleYaml (settings: readonly SettingEntry[] = SETTINGS): string {
  const blocks: string[] = [[
    `# Gemgate configuration file. Copy to ${DEFAULT_CONFIG_PATH} (read when present),`,
    '# or pass --config PATH / GEMGATE_CONFIG=PATH.',
    `# ${GENERATED_NOTE}`,
    '#',
    '# Precedence: built-in defaults < this file < environment variables.',
    '# Secrets are better kept out of this file: set them through the environment or <NAME>_FILE.',
    '# Lists take YAML lists or comma-separated strings. Every key is commented out: uncomment and',
    '# fill in at least the required ones (or set them in the environment).',
  ].join('\n')]
  let openGroup = ''
  for (const entry of settings) {
    const parents = entry.path.slice(0, -1)
    const group = parents.join('.')
    const lines: string[] = []
    if (group !== openGroup && parents.length > 0) {
      // Every key is commented out, so its section is too: an empty section would be null.
      parents.forEach((name, depth) => lines.push(`${'  '.repeat(depth)}# ${name}:`))
    }
    openGroup = group
    lines.push(...yamlEntry(entry, '  '.repeat(parents.length)))
    blocks.push(lines.join('\n'))
  }
  return blocks.join('\n\n') + '\n'
}

/** Every generated file's expected content, given the current configuration reference. */
export function renderAll (reference: string, settings: readonly SettingEntry[] = SETTINGS): Record<string, string> {
  return {
    [GENERATED_FILES.reference]: replaceBetweenMarkers(reference, renderConfigTable(settings)),
    [GENERATED_FILES.envExample]: renderEnvExample(settings),
    [GENERATED_FILES.exampleYaml]: renderExampleYaml(settings),
  }
}

function readOrEmpty (path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return ''
  }
}

function runCli (argv: readonly string[]): number {
  const root = resolve(fileURLToPath(new URL('..', import.meta.url)))
  const files = renderAll(readFileSync(resolve(root, GENERATED_FILES.reference), 'utf8'))
  const mode = argv[0]
  if (mode === '--write') {
    for (const [path, content] of Object.entries(files)) {
      writeFileSync(resolve(root, path), content)
      process.stdout.write(`wrote ${path}\n`)
    }
    return 0
  }
  if (mode === '--check') {
    const stale = Object.entries(files).filter(([path, content]) => readOrEmpty(resolve(root, path)) !== content).map(([path]) => path)
    for (const path of stale) process.stderr.write(`${path} is out of date with src/config/schema.ts; run npm run docs:config\n`)
    return stale.length === 0 ? 0 : 1
  }
  process.stderr.write('usage: config-docs.ts --write | --check\n')
  return 2
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = runCli(process.argv.slice(2))
}
