import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import type { z } from 'zod'
import { SETTINGS, configSchema, type Config } from './schema.js'

/** Where the YAML file is looked for when neither `--config` nor GEMGATE_CONFIG names one. */
export const DEFAULT_CONFIG_PATH = 'config/gemgate.yaml'

/** Start-up configuration is invalid; `problems` holds one line per bad key. */
export class ConfigError extends Error {
  readonly code = 'GEMGATE_CONFIG_INVALID'
  constructor (readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((line) => `  - ${line}`).join('\n')}`)
    this.name = 'ConfigError'
  }
}

/** What the loader reads: the process's arguments, environment and working directory. */
export interface ConfigSources {
  argv?: readonly string[]
  env?: Readonly<Record<string, string | undefined>>
  cwd?: string
}

type Tree = Record<string, unknown>

function configPath (argv: readonly string[], env: ConfigSources['env'], cwd: string): string | undefined {
  const flag = argv.findIndex((arg) => arg === '--config' || arg.startsWith('--config='))
  if (flag !== -1) {
    const value = argv[flag]!.includes('=') ? argv[flag]!.slice('--config='.length) : argv[flag + 1]
    if (value === undefined || value === '') throw new ConfigError(['--config: needs a path, e.g. --config config/gemgate.yaml'])
    return resolve(cwd, value)
  }
  if (env?.GEMGATE_CONFIG !== undefined && env.GEMGATE_CONFIG !== '') return resolve(cwd, env.GEMGATE_CONFIG)
  const fallback = resolve(cwd, DEFAULT_CONFIG_PATH)
  return existsSync(fallback) ? fallback : undefined
}

function readYaml (path: string): Tree {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new ConfigError([`GEMGATE_CONFIG: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'}), e.g. GEMGATE_CONFIG=config/gemgate.yaml`])
  }
  let document: unknown
  try {
    document = parseYaml(text)
  } catch (error) {
    throw new ConfigError([`GEMGATE_CONFIG: ${path} is not valid YAML: ${(error as Error).message.split('\n')[0]}`])
  }
  if (document === null || document === undefined) return {}
  if (typeof document !== 'object' || Array.isArray(document)) throw new ConfigError([`GEMGATE_CONFIG: ${path} must hold a mapping of settings`])
  return document as Tree
}

function setPath (tree: Tree, path: readonly string[], value: unknown): void {
  let node = tree
  for (const key of path.slice(0, -1)) {
    const next = node[key]
    node = (typeof next === 'object' && next !== null && !Array.isArray(next)) ? next as Tree : (node[key] = {}) as Tree
  }
  node[path.at(-1)!] = value
}

function fromEnvironment (tree: Tree, env: NonNullable<ConfigSources['env']>, cwd: string): string[] {
  const problems: string[] = []
  for (const entry of SETTINGS) {
    const fileVariable = `${entry.env}_FILE`
    const file = entry.secret === true ? env[fileVariable] : undefined
    if (file !== undefined && file !== '') {
      try {
        setPath(tree, entry.path, readFileSync(resolve(cwd, file), 'utf8').trim())
      } catch (error) {
        problems.push(`${fileVariable}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'}), e.g. ${fileVariable}=/run/secrets/${entry.env.toLowerCase()}`)
      }
      continue
    }
    const value = env[entry.env]
    if (value !== undefined && value !== '') setPath(tree, entry.path, value)
  }
  return problems
}

function describe (issue: z.core.$ZodIssue): string[] {
  if (issue.code === 'unrecognized_keys') {
    const parent = issue.path.join('.')
    return issue.keys.map((key) => `${parent === '' ? key : `${parent}.${key}`}: unknown setting (check the spelling; the example config lists every key)`)
  }
  const path = issue.path.map(String)
  const entry = SETTINGS.find((candidate) => candidate.path.every((key, index) => path[index] === key))
  if (entry === undefined) return [`${path.join('.') || '(config)'}: ${issue.message}`]
  return [`${entry.env} (${entry.path.join('.')}): ${problemText(issue, entry.secret === true)}, e.g. ${entry.env}=${entry.example}`]
}

function problemText (issue: z.core.$ZodIssue, secret: boolean): string {
  if (issue.code === 'invalid_type' && issue.input === undefined) return 'is required'
  if (secret || issue.input === undefined || typeof issue.input === 'object') return issue.message
  return `${issue.message} (got ${JSON.stringify(issue.input)})`
}

/** Builds the validated, frozen config: defaults < YAML file < environment. Throws ConfigError. */
export function loadConfig (sources: ConfigSources = {}): Config {
  const cwd = sources.cwd ?? '.'
  const env = sources.env ?? {}
  const path = configPath(sources.argv ?? [], env, cwd)
  const tree = path === undefined ? {} : readYaml(path)
  const problems = fromEnvironment(tree, env, cwd)
  const result = configSchema.safeParse(tree, { reportInput: true })
  if (!result.success) problems.push(...result.error.issues.flatMap(describe))
  if (problems.length > 0) throw new ConfigError(problems)
  return deepFreeze(result.data!)
}

function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}
