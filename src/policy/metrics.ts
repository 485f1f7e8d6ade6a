import { Counter, type Registry } from 'prom-client'
import { SummedCounter, type CounterSeries } from '../ops/summed-counter.js'
import type { LimitCheck } from './checks.js'

/** Why the policy refuses a call, as gemgate_policy_denials_total labels it. */
export const DENIAL_REASONS = ['model', 'rate', 'budget', 'quota', 'unpriced'] as const

/** The denial reason of the limit that refused a call. */
export function denialReason (refused: LimitCheck): typeof DENIAL_REASONS[number] {
  if (refused.check.kind === 'bucket') return 'rate'
  return refused.check.resource === 'nanoUsd' ? 'budget' : 'quota'
}
import type { BilledTokens } from './prices.js'

const KINDS = ['prompt', 'cached', 'output', 'thinking'] as const

type Outcome = 'admitted' | 'lowered' | 'limited' | 'denied'

/** The per-model map of `rule` in a two-level map (made the first time): no key string, nor closure, per call. */
function modelsOf<T> (map: Map<string, Map<string, T>>, rule: string): Map<string, T> {
  let models = map.get(rule)
  if (models === undefined) map.set(rule, models = new Map())
  return models
}

/** The policy's Prometheus counters: by model and rule, never by person (an unbounded label set). */
export class PolicyMetrics {
  readonly #calls: SummedCounter<'rule' | 'model' | 'outcome'>
  readonly #tokens: SummedCounter<'rule' | 'model' | 'kind'>
  readonly #cost: SummedCounter<'rule' | 'model'>
  readonly storeFailures: Counter
  /** Calls refused, by reason: model (not allowed), rate (a per-minute limit), budget (a USD limit), quota (a token limit of a day or month), unpriced (a method the gateway cannot price, under a token or USD limit). */
  readonly denials: Counter<'reason'>
  // Series per rule and model (both bounded), summed in process: a call costs a few additions.
  readonly #usage = new Map<string, Map<string, { tokens: Record<typeof KINDS[number], CounterSeries>, usd: CounterSeries }>>()
  readonly #outcomes = new Map<string, Map<string, Partial<Record<Outcome, CounterSeries>>>>()

  constructor (registry: Registry) {
    this.#calls = new SummedCounter({
      name: 'gemgate_policy_calls_total',
      help: 'Calls the policy judged, by rule, model and outcome (admitted, lowered, limited, denied).',
      labelNames: ['rule', 'model', 'outcome'] as const,
      registers: [registry],
    })
    this.#tokens = new SummedCounter({
      name: 'gemgate_policy_tokens_total',
      help: 'Tokens Google reported serving, by rule, model and kind (prompt, cached, output, thinking).',
      labelNames: ['rule', 'model', 'kind'] as const,
      registers: [registry],
    })
    this.#cost = new SummedCounter({
      name: 'gemgate_policy_cost_usd_total',
      help: 'Cost of what Google served at the price table\'s prices, by rule and model.',
      labelNames: ['rule', 'model'] as const,
      registers: [registry],
    })
    this.denials = new Counter({
      name: 'gemgate_policy_denials_total',
      help: 'Calls the policy refused, by reason: model (not allowed), rate (per-minute limit), budget (USD limit), quota (daily or monthly token limit), unpriced (a method the gateway cannot price, under a token or USD limit).',
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

  /** Counts one judged call. */
  call (rule: string, model: string, outcome: Outcome): void {
    const models = modelsOf(this.#outcomes, rule)
    let outcomes = models.get(model)
    if (outcomes === undefined) models.set(model, outcomes = {})
    const series = outcomes[outcome] ??= this.#calls.series({ rule, model, outcome })
    series.value++
  }

  /** Counts one call's usage. */
  usage (rule: string, model: string, billed: BilledTokens, nanoUsd: number): void {
    const models = modelsOf(this.#usage, rule)
    let series = models.get(model)
    if (series === undefined) {
      const tokens = Object.fromEntries(KINDS.map((kind) => [kind, this.#tokens.series({ rule, model, kind })])) as Record<typeof KINDS[number], CounterSeries>
      models.set(model, series = { tokens, usd: this.#cost.series({ rule, model }) })
    }
    for (const kind of KINDS) series.tokens[kind].value += billed[kind]
    series.usd.value += nanoUsd / 1e9
  }
}
