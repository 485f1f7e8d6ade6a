import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import type { z } from 'zod'
import { describePolicyIssue } from './policy.js'
import { SETTINGS, configSchema, type Config, type SettingEntry } from './schema.js'

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

/** Where the YAML file comes from, and the name to blame when it cannot be read. */
interface ConfigFile { path: string, source: '--config' | 'GEMGATE_CONFIG' }

/** The flag naming the YAML file. */
const CONFIG_FLAG = '--config'
/** Validate the configuration and exit without listening: a container's pre-start check. */
export const CHECK_CONFIG_FLAG = '--check-config'
const FLAGS = [CONFIG_FLAG, CHECK_CONFIG_FLAG]

// Anything else on the command line is a typo worth stopping for: a misspelt --config would
// otherwise start the gateway without the file the operator meant.
function unknownArgument (arg: string): string {
  const name = arg.split('=')[0]!
  const near = name.startsWith('-') ? FLAGS.find((flag) => editDistance(name, flag) <= 3) : undefined
  const meant = near === undefined ? '' : `did you mean ${near}? `
  return `${arg}: unknown argument; ${meant}the arguments are ${CONFIG_FLAG} PATH and ${CHECK_CONFIG_FLAG}, e.g. ${CONFIG_FLAG} config/gemgate.yaml`
}

/** The `--config` path from the command line; throws on any other argument. */
function configArgument (argv: readonly string[]): string | undefined {
  let path: string | undefined
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!
    if (arg === CONFIG_FLAG) path = argv[++index] ?? ''
    else if (arg.startsWith(`${CONFIG_FLAG}=`)) path = arg.slice(CONFIG_FLAG.length + 1)
    else if (arg !== CHECK_CONFIG_FLAG) throw new ConfigError([unknownArgument(arg)])
  }
  if (path === '') throw new ConfigError(['--config: needs a path, e.g. --config config/gemgate.yaml'])
  return path
}

function configFile (argv: readonly string[], env: ConfigSources['env'], cwd: string): ConfigFile | undefined {
  const flag = configArgument(argv)
  if (flag !== undefined) return { path: resolve(cwd, flag), source: '--config' }
  if (env?.GEMGATE_CONFIG !== undefined && env.GEMGATE_CONFIG !== '') return { path: resolve(cwd, env.GEMGATE_CONFIG), source: 'GEMGATE_CONFIG' }
  const fallback = resolve(cwd, DEFAULT_CONFIG_PATH)
  return existsSync(fallback) ? { path: fallback, source: 'GEMGATE_CONFIG' } : undefined
}

function readYaml ({ path, source }: ConfigFile): Tree {
  const example = source === '--config' ? '--config config/gemgate.yaml' : 'GEMGATE_CONFIG=config/gemgate.yaml'
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new ConfigError([`${source}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'}), e.g. ${example}`])
  }
  let document: unknown
  try {
    document = parseYaml(text)
  } catch (error) {
    throw new ConfigError([`${source}: ${path} is not valid YAML: ${(error as Error).message.split('\n')[0]}`])
  }
  if (document === null || document === undefined) return {}
  if (typeof document !== 'object' || Array.isArray(document)) throw new ConfigError([`${source}: ${path} must hold a mapping of settings`])
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

/** Copies env values into the tree; `unread` names the settings whose `_FILE` could not be read. */
function fromEnvironment (tree: Tree, env: NonNullable<ConfigSources['env']>, cwd: string): { problems: string[], unread: Set<string> } {
  const problems: string[] = []
  const unread = new Set<string>()
  for (const entry of SETTINGS) {
    const fileVariable = `${entry.env}_FILE`
    const file = entry.secret === true ? env[fileVariable] : undefined
    if (file !== undefined && file !== '') {
      try {
        setPath(tree, entry.path, readFileSync(resolve(cwd, file), 'utf8').trim())
      } catch (error) {
        unread.add(entry.env)
        problems.push(`${fileVariable}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'}), e.g. ${fileVariable}=/run/secrets/${entry.env.toLowerCase()}`)
      }
      continue
    }
    const value = env[entry.env]
    if (value !== undefined && value !== '') setPath(tree, entry.path, value)
  }
  return { problems, unread }
}

function entryFor (path: readonly PropertyKey[]): SettingEntry | undefined {
  return SETTINGS.find((candidate) => candidate.path.every((key, index) => String(path[index]) === key))
}

function editDistance (a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]!
}

// An unknown key still gets an example: the setting it most likely meant (a typo, or the
// env-var spelling used in YAML), else the keys allowed at that level.
function unknownKey (parent: readonly PropertyKey[], key: string): string {
  const prefix = parent.map(String)
  const name = [...prefix, key].join('.')
  const below = SETTINGS.filter((entry) => entry.path.length > prefix.length && prefix.every((part, index) => entry.path[index] === part))
  const keys = [...new Set(below.map((entry) => entry.path[prefix.length]!))]
  const byEnv = SETTINGS.find((entry) => entry.env === key.toUpperCase())
  const typo = keys
    .map((candidate) => ({ candidate, distance: editDistance(candidate.toLowerCase(), key.toLowerCase()) }))
    .filter(({ candidate, distance }) => distance <= Math.max(2, Math.floor(candidate.length / 3)))
    .sort((a, b) => a.distance - b.distance)[0]
  const meant = byEnv ?? (typo === undefined ? undefined : entryFor([...prefix, typo.candidate]))
  if (meant !== undefined) return `${name}: unknown setting; did you mean ${meant.path.join('.')}? e.g. ${meant.path.join('.')}: ${meant.example}`
  if (typo !== undefined) return `${name}: unknown setting; did you mean ${[...prefix, typo.candidate].join('.')}?`
  return `${name}: unknown setting; the settings here are ${keys.join(', ')}`
}

function describe (issue: z.core.$ZodIssue, tree: Tree): string[] {
  const section = issue.path[0]
  if ((section === 'policy' || section === 'prices') && issue.path.length > 0) return [describePolicyIssue(issue, tree.policy as unknown[])]
  if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => unknownKey(issue.path, key))
  const entry = entryFor(issue.path)
  if (entry === undefined) return [`${issue.path.map(String).join('.') || '(config)'}: ${issue.message}`]
  const remedy = entry.generate === undefined ? `e.g. ${entry.env}=${entry.example}` : `make one with: ${entry.generate}`
  return [`${entry.env} (${entry.path.join('.')}): ${problemText(issue, entry.secret === true)}, ${remedy}`]
}

function problemText (issue: z.core.$ZodIssue, secret: boolean): string {
  if (issue.code === 'invalid_type' && issue.input === undefined) return 'is required'
  if (secret || issue.input === undefined || typeof issue.input === 'object') return issue.message
  return `${issue.message} (got ${JSON.stringify(issue.input)})`
}

// One line per bad setting: a list with two bad entries, or a value failing two rules, is one
// problem; a setting whose _FILE was unreadable is already reported.
function onePerSetting (issues: z.core.$ZodIssue[], reported: Set<string>): z.core.$ZodIssue[] {
  const seen = new Set(reported)
  return issues.filter((issue) => {
    const env = issue.code === 'unrecognized_keys' ? undefined : entryFor(issue.path)?.env
    if (env === undefined) return true
    if (seen.has(env)) return false
    seen.add(env)
    return true
  })
}

/** Builds the validated, frozen config: defaults < YAML file < environment. Throws ConfigError. */
export function loadConfig (sources: ConfigSources = {}): Config {
  const cwd = sources.cwd ?? '.'
  const env = sources.env ?? {}
  const file = configFile(sources.argv ?? [], env, cwd)
  const tree = file === undefined ? {} : readYaml(file)
  const { problems, unread } = fromEnvironment(tree, env, cwd)
  problems.push(...readPolicyFile(tree, cwd))
  const result = configSchema.safeParse(tree, { reportInput: true })
  problems.push(...onePerSetting(result.error?.issues ?? [], unread).flatMap((issue) => describe(issue, tree)))
  const caFile = result.data?.upstream.caFile
  if (caFile !== undefined) problems.push(...caFileProblems(caFile, cwd))
  if (problems.length > 0) throw new ConfigError(problems)
  return deepFreeze(result.data!)
}

const PEM_CERTIFICATE = '-----BEGIN CERTIFICATE-----'

// Read here, at start, so a wrong path is one line naming the setting, not a stack trace from
// the first upstream call.
function caFileProblems (path: string, cwd: string): string[] {
  const entry = entryFor(['upstream', 'caFile'])!
  const name = `${entry.env} (${entry.path.join('.')})`
  let text: string
  try {
    text = readFileSync(resolve(cwd, path), 'utf8')
  } catch (error) {
    return [`${name}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'}), e.g. ${entry.env}=${entry.example}`]
  }
  return text.includes(PEM_CERTIFICATE) ? [] : [`${name}: ${path} holds no PEM certificate (${PEM_CERTIFICATE}), e.g. ${entry.env}=${entry.example}`]
}

// POLICY_FILE holds the rules as a list, or a mapping with `policy:` and `prices:`; it replaces
// what the config file says about them.
function readPolicyFile (tree: Tree, cwd: string): string[] {
  const path = tree.policyFile
  if (typeof path !== 'string' || path.trim() === '') return []
  let document: unknown
  try {
    document = parseYaml(readFileSync(resolve(cwd, path.trim()), 'utf8'))
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message.split('\n')[0]
    return [`POLICY_FILE (policyFile): cannot read ${path} (${why}), e.g. POLICY_FILE=config/policy.yaml`]
  }
  if (Array.isArray(document)) tree.policy = document
  else if (typeof document === 'object' && document !== null && !Array.isArray(document)) {
    const { policy, prices, ...rest } = document as Tree
    if (Object.keys(rest).length > 0) return [`POLICY_FILE (policyFile): ${path} may hold only policy: and prices:, not ${Object.keys(rest).join(', ')}`]
    if (policy !== undefined) tree.policy = policy
    if (prices !== undefined) tree.prices = prices
  } else if (document !== null && document !== undefined) {
    return [`POLICY_FILE (policyFile): ${path} must hold a list of rules, or policy: and prices:`]
  }
  return []
}

function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}
