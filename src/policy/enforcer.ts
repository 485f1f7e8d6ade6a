import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config/schema.js'
import type { Identity } from '../auth/identity.js'
import { LocalQuota, reservedAmounts, type QuotaAnswer, type QuotaRequest, type QuotaResource } from '../store/quota.js'
import type { Store } from '../store/store.js'
import { audioTokens } from '../proxy/usage-tap.js'
import { checksFor, personBase, type LimitCheck } from './checks.js'
import type { PolicyMetrics } from './metrics.js'
import type { ContextCaches } from './context-caches.js'
import type { MediaPrompts } from './media-prompts.js'
import type { InputLimits } from './input-limits.js'
import { Calendar } from './periods.js'
import { PriceTable, type BilledTokens } from './prices.js'
import { matchRule, type AppliedRule } from './rules.js'
import { LEASE_HEADROOM, LeaseBook, leaseOwner, sameChecks, type Known } from './leases.js'
import { SettleBatch } from './settle-batch.js'
import { UsageBook, type UsageMetadata } from './usage.js'

/** The fewest output tokens a call is admitted for: below this, a lowered maxOutputTokens is no answer. */
export const MIN_ANSWER_TOKENS = 32
/** After the store fails, how long this replica keeps to its local share before trying it again. */
export const STORE_RETRY_MS = 1_000
/** Callers whose remaining limits this replica remembers for x-ratelimit-* headers. */
const MAX_KNOWN = 10_000
/** At most one warning per this interval while the store is down. */
const WARN_INTERVAL_MS = 10_000

/** What one call asks for, once its body is read. */
export interface CallEstimate {
  model: string
  promptTokens: number
  /** Of the prompt, the tokens Google counted as audio: priced at the audio price. */
  audioTokens?: number
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

/** An admitted call: its reservation, and what is left of each limit. */
export interface Admitted { admitted: true, reservation: Reservation, remaining: number[] }

/** The verdict on a call: its reservation, or the limit that refused it. */
export type Verdict = Admitted | { admitted: false, refused: LimitCheck, retryAfterMs: number }

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
  readonly #checks = new WeakMap<Identity, { checks: LimitCheck[], until: number }>()
  /** Leases of quota held in process: only worth it when the store is a round trip away. */
  readonly leases: LeaseBook | undefined
  /** What this replica last learnt of each caller's limits (x-ratelimit-* on calls that do not reserve). */
  readonly #known = new Map<string, Known>()
  #storeDownUntil = 0
  #lastWarning = 0
  /** How many replicas share the store: each one's part of every limit while it is down. */
  replicas = 1
  /** The sizes of the context caches calls name (set by the plugin, which reads them from Google). */
  contextCaches: ContextCaches | undefined
  /** Google's count of the prompts of calls that hold media (set by the plugin, which asks Google). */
  mediaPrompts: MediaPrompts | undefined
  /** The input limits of models called with tools that run at Google (set by the plugin, which asks Google). */
  inputLimits: InputLimits | undefined

  constructor (private readonly config: Config, private readonly store: Store, readonly metrics: PolicyMetrics, private readonly log: FastifyBaseLogger) {
    this.calendar = new Calendar(config.policyTimezone)
    this.prices = new PriceTable(config.prices)
    this.usage = new UsageBook(store, this.calendar, (error) => log.warn({ err: error }, 'usage not recorded'))
    this.settlements = new SettleBatch(store, (error) => {
      log.warn({ err: error }, 'policy reservations could not be settled')
      metrics.storeFailures.inc()
    })
    if (store.kind === 'redis') this.leases = new LeaseBook((personId, charges) => { this.settlements.add(personId, charges) })
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

  /**
   * The counters that bind a call by `identity`: the person's rule, and its key's own limits.
   * The full limits are built once per identity and calendar period; callers must not change them.
   */
  checksOf (identity: Identity, now: number, share = 1): LimitCheck[] {
    if (share !== 1) return this.#buildChecks(identity, now, share)
    const cached = this.#checks.get(identity)
    if (cached !== undefined && now < cached.until) return cached.checks
    const checks = this.#buildChecks(identity, now, 1)
    let until = Infinity
    for (const entry of checks) if (entry.check.resetAt !== undefined && entry.check.resetAt < until) until = entry.check.resetAt
    this.#checks.set(identity, { checks, until })
    return checks
  }

  #buildChecks (identity: Identity, now: number, share: number): LimitCheck[] {
    const rule = this.ruleFor(identity)
    const base = personBase(identity.personId)
    return [
      ...(rule === null ? [] : checksFor(rule.limits, base, 'person', this.calendar, now, share)),
      ...(identity.keyLimits === undefined || identity.keyId === undefined ? [] : checksFor(identity.keyLimits, `${base}:key:${identity.keyId}`, 'key', this.calendar, now, share)),
    ]
  }

  /**
   * Checks and reserves a call in one step: from this replica's lease when it holds enough,
   * else in the store (which may grant a new lease with it), else this replica's share while
   * the store is down.
   */
  async reserve (identity: Identity, call: CallEstimate): Promise<Verdict> {
    const now = Date.now()
    const base = this.#quotaRequest(call, now)
    let checks = this.checksOf(identity, now)
    let local = now < this.#storeDownUntil
    let answer: QuotaAnswer | undefined
    const owner = leaseOwner(identity.personId, identity.keyId)
    if (!local) {
      const leased = await this.#fromLease(owner, identity.personId, checks, base)
      if (leased !== undefined) return leased
      try {
        answer = await this.#reserveInStore(owner, checks, base, now)
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
    this.#remember(owner, { checks, remaining: answer!.remaining, at: now })
    return { admitted: true, remaining: answer!.remaining, reservation: { checks, amounts: reservedAmounts(base, answer!.output), output: answer!.output, local } }
  }

  /**
   * The steady state of `reserve`, without a promise: the call drawn whole from this replica's
   * lease, or undefined when it must go through `reserve` (no lease or not enough left in it, an
   * acquisition under way, the store down, no leases at all).
   */
  reserveFromLease (identity: Identity, call: CallEstimate): Admitted | undefined {
    const now = Date.now()
    if (this.leases === undefined || now < this.#storeDownUntil) return undefined
    return this.#draw(leaseOwner(identity.personId, identity.keyId), identity.personId, this.checksOf(identity, now), this.#quotaRequest(call, now), now)
  }

  // Priced for the prompt's estimated size: a long prompt reserves at its long-context price.
  #quotaRequest (call: CallEstimate, now: number): Omit<QuotaRequest, 'checks'> {
    const price = this.prices.priceOf(call.model, now, call.promptTokens)
    return { promptTokens: call.promptTokens, maxOutput: call.maxOutput, minOutput: call.minOutput, inputPrice: this.prices.inputPriceOf(price, call.promptTokens, call.audioTokens), outputPrice: price.output }
  }

  // A call drawn whole from the lease; while another call is getting one, wait for it rather than ask too.
  async #fromLease (owner: string, personId: string, checks: LimitCheck[], base: Omit<QuotaRequest, 'checks'>): Promise<Admitted | undefined> {
    if (this.leases === undefined) return undefined
    for (;;) {
      const drawn = this.#draw(owner, personId, checks, base, Date.now())
      if (drawn !== undefined) return drawn
      const pending = this.leases.pending(owner)
      if (pending === undefined) return undefined
      await pending.catch(() => {})
    }
  }

  // One call's maximum drawn from the lease, topped up off the call's path when it runs low.
  #draw (owner: string, personId: string, checks: LimitCheck[], base: Omit<QuotaRequest, 'checks'>, now: number): Admitted | undefined {
    const leases = this.leases!
    const amounts = reservedAmounts(base, base.maxOutput)
    const remaining = leases.draw(owner, checks, amounts, now)
    if (remaining === undefined) return undefined
    if (leases.low(owner, checks, amounts, now)) this.#topUp(owner, personId, checks, base, now)
    this.#remember(owner, { checks, remaining, at: now })
    return { admitted: true, remaining, reservation: { checks, amounts, output: base.maxOutput, local: false } }
  }

  // A lease running low is topped up off the call's path, so calls do not stall when it runs out:
  // one more call like this one is reserved with it, and joins the lease.
  #topUp (owner: string, personId: string, checks: LimitCheck[], base: Omit<QuotaRequest, 'checks'>, now: number): void {
    const leases = this.leases!
    const calls = leases.nextCalls(owner)
    const acquisition = this.store.reserveQuota({ ...base, checks: checks.map((entry) => entry.check), lease: { calls, divisor: LEASE_HEADROOM * this.replicas } })
    leases.acquiring(owner, acquisition)
    acquisition.then((answer) => {
      if (!answer.admitted) return
      const amounts = reservedAmounts(base, answer.output)
      if (answer.leased !== undefined) leases.grant(owner, checks, amounts, answer.leased + 1, calls, answer.remaining, now)
      else {
        // Near a limit: no lease, and the call reserved ahead goes back.
        leases.last(owner)
        this.settlements.add(personId, checks.map((entry) => ({ check: entry.check, amount: -amounts[entry.check.resource] })))
      }
    }, () => {
      // The next call that needs the store finds out, and falls back as configured.
    }).finally(() => { leases.settled(owner, acquisition) })
  }

  async #reserveInStore (owner: string, checks: LimitCheck[], base: Omit<QuotaRequest, 'checks'>, now: number): Promise<QuotaAnswer> {
    const request: QuotaRequest = { ...base, checks: checks.map((entry) => entry.check) }
    if (this.leases === undefined) return await this.store.reserveQuota(request)
    const calls = this.leases.nextCalls(owner)
    const acquisition = this.store.reserveQuota({ ...request, lease: { calls, divisor: LEASE_HEADROOM * this.replicas } })
    this.leases.acquiring(owner, acquisition)
    let answer
    try {
      answer = await acquisition
    } finally {
      this.leases.settled(owner, acquisition)
    }
    if (!answer.admitted || answer.leased === undefined) return answer
    const amounts = reservedAmounts(base, answer.output)
    this.leases.grant(owner, checks, amounts, answer.leased, calls, answer.remaining, now)
    // What is left counts the lease: this replica can still spend it.
    return { ...answer, remaining: answer.remaining.map((left, index) => left + amounts[checks[index]!.check.resource] * answer.leased!) }
  }

  #remember (owner: string, known: Known): void {
    // Bounded: callers not seen lately are read from the store again when next asked about.
    if (this.#known.size >= MAX_KNOWN && !this.#known.has(owner)) this.#known.clear()
    this.#known.set(owner, known)
  }

  /**
   * What is left of each limit of `identity` as far as this replica knows (its last reservation
   * for them, per-minute buckets refilled since), without a round trip; undefined when it knows
   * nothing of them yet.
   */
  knownRemaining (identity: Identity): { checks: LimitCheck[], remaining: number[] } | undefined {
    const now = Date.now()
    const checks = this.checksOf(identity, now)
    const known = this.#known.get(leaseOwner(identity.personId, identity.keyId))
    if (known === undefined || !sameChecks(known.checks, checks)) return undefined
    return { checks, remaining: refilled(known, now).map(Math.floor) }
  }

  /**
   * What is left of each limit of `identity`: as this replica knows it, else as the store has it,
   * less what this replica's leases hold for its next calls. `reservable`: what the store itself
   * has left to reserve (a lease's quota counts as used), as it refused a call.
   */
  async remaining (identity: Identity, reservable = false): Promise<{ checks: LimitCheck[], remaining: number[] }> {
    const known = reservable ? undefined : this.knownRemaining(identity)
    if (known !== undefined) return known
    const now = Date.now()
    const checks = this.checksOf(identity, now)
    const used = await this.used(checks, !reservable)
    const read = { checks, remaining: used.map((amount, index) => checks[index]!.check.limit - amount), at: now }
    this.#remember(leaseOwner(identity.personId, identity.keyId), read)
    return { checks, remaining: refilled(read, now).map(Math.floor) }
  }

  /**
   * The request rate `identity` has spent, as this replica knows without a round trip, and how
   * long until one request is back; undefined when it knows of none spent. Other replicas only
   * spend more, so a call now would be refused: a caller can be told so before the gateway asks
   * Google anything for the call (a media prompt's count).
   */
  spentRequests (identity: Identity): { entry: LimitCheck, retryAfterMs: number } | undefined {
    const now = Date.now()
    const known = this.#known.get(leaseOwner(identity.personId, identity.keyId))
    if (known === undefined || !sameChecks(known.checks, this.checksOf(identity, now))) return undefined
    const left = refilled(known, now)
    const index = known.checks.findIndex((entry, at) => entry.check.resource === 'requests' && entry.check.kind === 'bucket' && left[at]! < 1)
    if (index === -1) return undefined
    const { check } = known.checks[index]!
    return { entry: known.checks[index]!, retryAfterMs: Math.ceil((1 - left[index]!) * check.windowMs / check.limit) }
  }

  /** Gives back every lease and writes every pending settlement (the gateway is closing). */
  async flush (): Promise<void> {
    this.leases?.returnAll()
    await this.settlements.flush()
  }

  // Closed: the caller answers 503. Local: this replica goes on with its share, and says so.
  #storeFailed (error: unknown): void {
    // Leases are not given back to a store that may come back empty: they stay counted (the safe side).
    this.leases?.forget()
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
    const rule = this.ruleFor(identity)?.name ?? 'none'
    this.metrics.usage(rule, this.prices.labelOf(model), billed, nanoUsd)
    const call = this.usage.call(model, billed, nanoUsd)
    const checks = reservation?.checks ?? this.checksOf(identity, Date.now())
    if (checks.length === 0) {
      // No limit to correct: the day's usage is batched with others' (one write per person per second).
      this.usage.add(identity.personId, call)
      return
    }
    // What the call used, less what it reserved (nothing, without a reservation).
    const reserved = reservation?.amounts
    const deltas: Record<QuotaResource, number> = {
      requests: 1 - (reserved?.requests ?? 0),
      tokens: billed.prompt + billed.output + billed.thinking - (reserved?.tokens ?? 0),
      nanoUsd: nanoUsd - (reserved?.nanoUsd ?? 0),
    }
    if (reservation?.local === true) {
      this.#local.settle({ charges: checks.map((entry) => ({ check: entry.check, amount: deltas[entry.check.resource] })) })
      this.usage.add(identity.personId, call)
      return
    }
    this.settlements.addCall(identity.personId, checks, deltas, this.usage.entry(identity.personId, call))
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

  /**
   * What each limit of `identity` has used (less what this replica holds in leases: reserved,
   * not used; other replicas' leases count); the local share's figures while the store is down.
   */
  async used (checks: LimitCheck[], lessLeases = true): Promise<number[]> {
    const quotas = checks.map((entry) => entry.check)
    if (Date.now() >= this.#storeDownUntil) {
      try {
        const used = await this.store.quotaUsed(quotas)
        const held = lessLeases ? this.leases?.heldOn(quotas) : undefined
        return held === undefined ? used : used.map((amount, index) => Math.max(0, amount - held[index]!))
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
  return {
    prompt: prompt + (usage.toolUsePromptTokenCount ?? 0),
    cached: usage.cachedContentTokenCount ?? 0,
    output,
    thinking,
    audio: audioTokens(usage.promptTokensDetails) + audioTokens(usage.toolUsePromptTokensDetails),
    cachedAudio: audioTokens(usage.cacheTokensDetails),
  }
}

/** What is left of each limit in `known`, per-minute buckets refilled since it was learnt. */
function refilled (known: Known, now: number): number[] {
  return known.remaining.map((left, index) => {
    const { check } = known.checks[index]!
    return check.kind === 'bucket' ? Math.min(check.limit, left + (now - known.at) * check.limit / check.windowMs) : left
  })
}
