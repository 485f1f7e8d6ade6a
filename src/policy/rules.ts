import type { LimitName, Limits, PolicyRule } from '../config/policy.js'
import { LIMIT_NAMES } from '../config/policy.js'

/** Who a rule is matched against: what sign-in told about the person. */
export interface Subject {
  email: string
  groups?: readonly string[]
  /** Google's `hd` claim: counts as a domain. */
  hostedDomain?: string
}

/** The rule that applies to a person, by the name metrics and pages show. */
export interface AppliedRule {
  name: string
  limits: Limits
}

/** A rule's name: its own, `default`, or its position. */
export function ruleName (rule: PolicyRule, index: number): string {
  return rule.name ?? (rule.default === true ? 'default' : `rule-${index + 1}`)
}

const lower = (values: readonly string[] | undefined): Set<string> => new Set((values ?? []).map((value) => value.toLowerCase()))

/** The first rule that matches `subject` (the default rule matches everyone); null without a policy. */
export function matchRule (rules: readonly PolicyRule[], subject: Subject): AppliedRule | null {
  const email = subject.email.toLowerCase()
  const domains = new Set([email.slice(email.lastIndexOf('@') + 1), ...(subject.hostedDomain === undefined ? [] : [subject.hostedDomain.toLowerCase()])])
  const groups = lower(subject.groups)
  for (const [index, rule] of rules.entries()) {
    const match = rule.match
    const hit = rule.default === true || (match !== undefined && (
      lower(match.emails).has(email) ||
      [...lower(match.domains)].some((domain) => domains.has(domain)) ||
      [...lower(match.groups)].some((group) => groups.has(group))))
    if (hit) {
      const { name: _name, match: _match, default: _default, ...limits } = rule
      return { name: ruleName(rule, index), limits }
    }
  }
  return null
}

const globCache = new Map<string, RegExp>()

/** A model glob (`gemini-*-flash*`, `?` one character) as an anchored expression. */
export function globPattern (glob: string): RegExp {
  let pattern = globCache.get(glob)
  if (pattern === undefined) {
    const source = glob.split('').map((char) => char === '*' ? '.*' : char === '?' ? '.' : char.replace(/[.+^${}()|[\]\\-]/g, '\\$&')).join('')
    globCache.set(glob, pattern = new RegExp(`^${source}$`, 'i'))
  }
  return pattern
}

// Each list's verdicts per model name, asked on every call (bounded: model names come from clients).
const verdicts = new WeakMap<readonly string[], Map<string, boolean>>()
const MAX_VERDICTS = 1_000

function allowedBy (globs: readonly string[], model: string): boolean {
  let known = verdicts.get(globs)
  if (known === undefined) verdicts.set(globs, known = new Map())
  let allowed = known.get(model)
  if (allowed === undefined) {
    allowed = globs.some((glob) => globPattern(glob).test(model))
    if (known.size < MAX_VERDICTS) known.set(model, allowed)
  }
  return allowed
}

/** True when every list of model globs given allows `model` (an absent list allows every model). */
export function modelAllowed (model: string, ...lists: Array<readonly string[] | undefined>): boolean {
  for (const globs of lists) {
    if (globs !== undefined && !allowedBy(globs, model)) return false
  }
  return true
}

/**
 * Why a key's own limits would be wider than its owner's: one line per limit, empty when they
 * are not. A key may only narrow: lower numbers, and models its owner may use.
 */
export function widerThan (key: Limits, owner: Limits): string[] {
  const problems: string[] = []
  for (const name of LIMIT_NAMES) {
    const mine = key[name]
    const theirs = owner[name]
    if (mine !== undefined && theirs !== undefined && mine > theirs) problems.push(`${name} ${mine} is above your own ${theirs}`)
  }
  for (const glob of key.models ?? []) {
    // A plain name must be one the owner may use; a glob is intersected with the owner's at each call.
    if (!/[*?]/.test(glob) && !modelAllowed(glob, owner.models)) problems.push(`model ${glob} is not one you may use`)
  }
  return problems
}

/** The limits that bind a call by a key: each name's lower value of the owner's and the key's. */
export function narrowest (owner: Limits, key: Limits | undefined): Record<LimitName, number | undefined> {
  return Object.fromEntries(LIMIT_NAMES.map((name) => {
    const values = [owner[name], key?.[name]].filter((value): value is number => value !== undefined)
    return [name, values.length === 0 ? undefined : Math.min(...values)]
  })) as Record<LimitName, number | undefined>
}
