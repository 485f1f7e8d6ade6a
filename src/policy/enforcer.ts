import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config/schema.js'
import type { Identity } from '../auth/identity.js'
import { LocalQuota, reservedAmounts, type QuotaAnswer, type QuotaRequest, type QuotaResource } from '../store/quota.js'
import type { Store } from '../store/store.js'
import { checksFor, personBase, type LimitCheck } from './checks.js'
import type { PolicyMetrics } from './metrics.js'
import { Calendar } from './periods.js'
import { PriceTable, type BilledTokens } from './prices.js'
import { matchRule, type AppliedRule } from './rules.js'
import { SettleBatch } from './settle-batch.js'
import { UsageBook, type UsageMetadata } from './usage.js'

/** The fewest output tokens a call is admitted for: below this, a lowered maxOutputTokens is no answer. */
export const MIN_ANSWER_TOKENS = 32
/** After the store fails, how long this replica keeps to its local share before trying it again. */
export const STORE_RETRY_MS = 1_000
/** At most one warning per this interval while the store is down. */
const WARN_INTERVAL_MS = 10_000

/** What one call asks for, once its body is read. */
export interface CallEstimate {
  model: string
  promptTokens: number
  maxOutput: number
  minOutput: number
}

/** A reservation held for a call until it is settled. */
export interface Reservation {
  checks: LimitCheck[]
  amounts: Record<QuotaResource, number>
  output: number
  /** Where it was counted: the shared store, or this replica's share while the store is down. */
  local: boolean
}

/** The verdict on a call: its reservation, or the limit that refused it. */
export type Verdict =
  | { admitted: true, reservation: Reservation, remaining: number[] }
  | { admitted: false, refused: LimitCheck, retryAfterMs: number }

/**
 * The policy's arithmetic: which rule applies, the counters it checks, reserving (in the store,
 * or this replica's share of every limit while the store is down) and settling.
 */
export class Enforcer {
  readonly calendar: Calendar
  readonly prices: PriceTable
  readonly usage: UsageBook
  readonly settlements: SettleBatch
  readonly #local = new LocalQuota()
  readonly #rules = new WeakMap<Identity, AppliedRule | null>()
  #storeDownUntil = 0
  #lastWarning = 0
  /** How many replicas share the store: each one's part of every limit while it is down. */
  replicas = 1

  constructor (private readonly config: Config, private readonly store: Store, readonly metrics: PolicyMetrics, private readonly log: FastifyBaseLogger) {
    this.calendar = new Calendar(config.policyTimezone)
    this.prices = new PriceTable(config.prices)
    this.usage = new UsageBook(store, this.calendar, (error) => log.warn({ err: error }, 'usage not recorded'))
    this.settlements = new SettleBatch(store, (error) => {
      log.warn({ err: error }, 'policy reservations could not be settled')
      metrics.storeFailures.inc()
    })
  }

  /** The rule that applies to a person (identities are cached objects: matched once each). */
  ruleFor (identity: Identity): AppliedRule | null {
    let rule = this.#rules.get(identity)
    if (rule === undefined) {
      rule = matchRule(this.config.policy, identity)
      this.#rules.set(identity, rule)
    }
    return rule
  }

  /** The counters that bind a call by `identity`: the person's rule, and its key's own limits. */
  checksOf (identity: Identity, now: number, share = 1): LimitCheck[] {
    const rule = this.ruleFor(identity)
    const base = personBase(identity.personId)
    return [
      ...(rule === null ? [] : checksFor(rule.limits, base, 'person', this.calendar, now, share)),
      ...(identity.keyLimits === undefined || identity.keyId === undefined ? [] : checksFor(identity.keyLimits, `${base}:key:${identity.keyId}`, 'key', this.calendar, now, share)),
    ]
  }

  /** Checks and reserves a call in one step. */
  async reserve (identity: Identity, call: CallEstimate): Promise<Verdict> {
    const now = Date.now()
    // Priced for the prompt's estimated size: a long prompt reserves at its long-context price.
    const price = this.prices.priceOf(call.model, new Date(now), call.promptTokens)
    const base = { promptTokens: call.promptTokens, maxOutput: call.maxOutput, minOutput: call.minOutput, inputPrice: price.input, outputPrice: price.output }
    let checks = this.checksOf(identity, now)
    let local = now < this.#storeDownUntil
    let answer: QuotaAnswer | undefined
    if (!local) {
      try {
        answer = await this.store.reserveQuota({ ...base, checks: checks.map((entry) => entry.check) })
      } catch (error) {
        this.#storeFailed(error)
        local = true
      }
    }
    if (local) {
      checks = this.checksOf(identity, now, this.replicas)
      answer = this.#local.reserve({ ...base, checks: checks.map((entry) => entry.check) } satisfies QuotaRequest)
    }
    if (!answer!.admitted) return { admitted: false, refused: checks[answer!.blocked]!, retryAfterMs: answer!.retryAfterMs }
    return { admitted: true, remaining: answer!.remaining, reservation: { checks, amounts: reservedAmounts(base, answer!.output), output: answer!.output, local } }
  }

  // Closed: the caller answers 503. Local: this replica goes on with its share, and says so.
  #storeFailed (error: unknown): void {
    if (this.config.policyOnStoreFailure === 'closed') throw new StoreDownError(error)
    const now = Date.now()
    this.#storeDownUntil = now + STORE_RETRY_MS
    this.metrics.storeFailures.inc()
    if (now - this.#lastWarning > WARN_INTERVAL_MS) {
      this.#lastWarning = now
      this.log.warn({ err: error, replicas: this.replicas }, 'policy store unreachable: enforcing this replica\'s share of every limit')
    }
  }

  /**
   * Settles a call with what Google reported it served (or, with no reservation, charges it in
   * full: usage metered elsewhere, like Live sessions), and books the usage of the day.
   */
  settle (identity: Identity, model: string, usage: UsageMetadata, reservation?: Reservation): void {
    const billed = billedTokens(usage)
    const nanoUsd = this.prices.costOf(model, billed)
    const actual: Record<QuotaResource, number> = { requests: 1, tokens: billed.prompt + billed.output + billed.thinking, nanoUsd }
    const reserved = reservation?.amounts ?? { requests: 0, tokens: 0, nanoUsd: 0 }
    const deltas = { requests: actual.requests - reserved.requests, tokens: actual.tokens - reserved.tokens, nanoUsd: actual.nanoUsd - reserved.nanoUsd }
    const rule = this.ruleFor(identity)?.name ?? 'none'
    this.metrics.usage(rule, this.prices.labelOf(model), billed, nanoUsd)
    const fields = this.usage.fields(model, billed, nanoUsd)
    const checks = reservation?.checks ?? this.checksOf(identity, Date.now())
    if (checks.length === 0) {
      // No limit to correct: the day's usage is batched with others' (one write per person per second).
      this.usage.add(identity.personId, fields)
      return
    }
    const charges = checks.map((entry) => ({ check: entry.check, amount: deltas[entry.check.resource] }))
    if (reservation?.local === true) {
      this.#local.settle({ charges })
      this.usage.add(identity.personId, fields)
      return
    }
    this.settlements.add(identity.personId, charges, this.usage.entry(identity.personId, fields))
  }

  /** Gives back a reservation in full: the call never reached Google (or Google refused it). */
  release (personId: string, reservation: Reservation): void {
    const charges = reservation.checks.map((entry) => ({ check: entry.check, amount: entry.check.resource === 'requests' ? 0 : -reservation.amounts[entry.check.resource] }))
    if (reservation.local) this.#local.settle({ charges })
    else this.settlements.add(personId, charges)
  }

  /** The first budget (a day's or a month's total) that `identity` has used up, if any. */
  async exhaustedBudget (identity: Identity): Promise<LimitCheck | undefined> {
    const budgets = this.checksOf(identity, Date.now()).filter((entry) => entry.check.kind === 'total')
    if (budgets.length === 0) return undefined
    const used = await this.used(budgets)
    return budgets.find((entry, index) => used[index]! >= entry.check.limit)
  }

  /** What each limit of `identity` has used; the local share's figures while the store is down. */
  async used (checks: LimitCheck[]): Promise<number[]> {
    const quotas = checks.map((entry) => entry.check)
    if (Date.now() >= this.#storeDownUntil) {
      try {
        return await this.store.quotaUsed(quotas)
      } catch {}
    }
    return this.#local.used(quotas)
  }
}

/** The store is unreachable and POLICY_ON_STORE_FAILURE=closed. */
export class StoreDownError extends Error {
  constructor (cause: unknown) {
    super('the policy store is unreachable', { cause })
  }
}

/** Google's usageMetadata as tokens billed: thinking tokens (billed as output) apart, cached prompt tokens apart. */
export function billedTokens (usage: UsageMetadata): BilledTokens {
  const prompt = usage.promptTokenCount ?? 0
  const output = usage.candidatesTokenCount ?? 0
  // A meter that reports an absent count as 0 must not hide thinking tokens that the total shows.
  const thinking = usage.thoughtsTokenCount || Math.max(0, (usage.totalTokenCount ?? 0) - prompt - output - (usage.toolUsePromptTokenCount ?? 0))
  return { prompt: prompt + (usage.toolUsePromptTokenCount ?? 0), cached: usage.cachedContentTokenCount ?? 0, output, thinking }
}
