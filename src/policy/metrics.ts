import { Counter, type Registry } from 'prom-client'
import type { LimitCheck } from './checks.js'

/** Why the policy refuses a call, as gemgate_policy_denials_total labels it. */
export const DENIAL_REASONS = ['model', 'rate', 'budget', 'quota'] as const

/** The denial reason of the limit that refused a call. */
export function denialReason (refused: LimitCheck): typeof DENIAL_REASONS[number] {
  if (refused.check.kind === 'bucket') return 'rate'
  return refused.check.resource === 'nanoUsd' ? 'budget' : 'quota'
}
import type { BilledTokens } from './prices.js'

const KINDS = ['prompt', 'cached', 'output', 'thinking'] as const

/** The policy's Prometheus counters: by model and rule, never by person (an unbounded label set). */
export class PolicyMetrics {
  readonly calls: Counter<'rule' | 'model' | 'outcome'>
  readonly tokens: Counter<'rule' | 'model' | 'kind'>
  readonly cost: Counter<'rule' | 'model'>
  readonly storeFailures: Counter
  /** Calls refused, by reason: model (not allowed), rate (a per-minute limit), budget (a USD limit), quota (a token limit of a day or month). */
  readonly denials: Counter<'reason'>
  // Label children per rule and model (both bounded): prom-client would hash the labels on every call.
  readonly #children = new Map<string, { tokens: Record<string, ReturnType<Counter['labels']>>, cost: ReturnType<Counter['labels']> }>()

  constructor (registry: Registry) {
    this.calls = new Counter({
      name: 'gemgate_policy_calls_total',
      help: 'Calls the policy judged, by rule, model and outcome (admitted, lowered, limited, denied).',
      labelNames: ['rule', 'model', 'outcome'] as const,
      registers: [registry],
    })
    this.tokens = new Counter({
      name: 'gemgate_policy_tokens_total',
      help: 'Tokens Google reported serving, by rule, model and kind (prompt, cached, output, thinking).',
      labelNames: ['rule', 'model', 'kind'] as const,
      registers: [registry],
    })
    this.cost = new Counter({
      name: 'gemgate_policy_cost_usd_total',
      help: 'Cost of what Google served at the price table\'s prices, by rule and model.',
      labelNames: ['rule', 'model'] as const,
      registers: [registry],
    })
    this.denials = new Counter({
      name: 'gemgate_policy_denials_total',
      help: 'Calls the policy refused, by reason: model (not allowed), rate (per-minute limit), budget (USD limit), quota (daily or monthly token limit).',
      labelNames: ['reason'] as const,
      registers: [registry],
    })
    for (const reason of DENIAL_REASONS) this.denials.inc({ reason }, 0)
    this.storeFailures = new Counter({
      name: 'gemgate_policy_store_failures_total',
      help: 'Policy store calls that failed (POLICY_ON_STORE_FAILURE decides what happens then).',
      registers: [registry],
    })
  }

  readonly #outcomes = new Map<string, ReturnType<Counter['labels']>>()

  /** Counts one judged call. */
  call (rule: string, model: string, outcome: 'admitted' | 'lowered' | 'limited' | 'denied'): void {
    const key = `${rule}|${model}|${outcome}`
    let child = this.#outcomes.get(key)
    if (child === undefined) this.#outcomes.set(key, child = this.calls.labels({ rule, model, outcome }))
    child.inc()
  }

  /** Counts one call's usage. */
  usage (rule: string, model: string, billed: BilledTokens, nanoUsd: number): void {
    const key = `${rule}|${model}`
    let children = this.#children.get(key)
    if (children === undefined) {
      const tokens = Object.fromEntries(KINDS.map((kind) => [kind, this.tokens.labels({ rule, model, kind })]))
      this.#children.set(key, children = { tokens, cost: this.cost.labels({ rule, model }) })
    }
    for (const kind of KINDS) {
      if (billed[kind] > 0) children.tokens[kind]!.inc(billed[kind])
    }
    if (nanoUsd > 0) children.cost.inc(nanoUsd / 1e9)
  }
}
