import type { QuotaResource } from '../store/quota.js'
import type { LimitCheck } from './checks.js'

/**
 * The most calls one lease holds: the share of calls that still go to the store is at least 1 in
 * this many + 1. Its headroom share (below) is what bounds a lease near a limit; this bounds the
 * store's work far from one (a top-up is a script over every counter of the call).
 */
export const LEASE_MAX_CALLS = 256
/** The first lease of a person holds this many calls; each one used up before it lapsed doubles the next. */
export const LEASE_FIRST_CALLS = 4
/**
 * A lease holds at most 1/(this × replicas) of any limit's headroom: all replicas' leases together
 * keep at most about a quarter of what is left, and none is granted near a limit.
 */
export const LEASE_HEADROOM = 4
/** A lease unused this long is given back, so another replica can use its quota. */
export const LEASE_IDLE_MS = 1_000
/**
 * A lease is given back this long after it was granted, used or not: a per-minute rate counts a
 * leased call when the lease was taken, so this bounds how early (see docs/policy.md).
 */
export const LEASE_MAX_AGE_MS = 2_000

/** Quota reserved in the store for calls this replica has not made yet. */
interface Lease {
  checks: LimitCheck[]
  /** What is left of the lease, per check. */
  held: number[]
  /** What the store had left when the lease was granted, after it, per check. */
  storeRemaining: number[]
  grantedAt: number
  usedAt: number
  /** Calls asked for when this lease was granted. */
  calls: number
  /** An acquisition in flight: calls that find the lease short wait for it rather than each asking the store. */
  pending?: Promise<unknown>
  /** A top-up found the store near a limit: this lease is the last, calls go one by one once it is spent. */
  last?: boolean
}

/** What this replica last knew of a caller's limits, for x-ratelimit-* headers on calls that do not reserve. */
export interface Known { checks: LimitCheck[], remaining: number[], at: number }

/** Whether two lists of checks name the same counters (a new period names new ones). */
export function sameChecks (a: LimitCheck[], b: LimitCheck[]): boolean {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let index = 0; index < a.length; index++) {
    if (a[index]!.check.key !== b[index]!.check.key) return false
  }
  return true
}

/**
 * Leases of quota held in process, per person and key. Every lease was reserved in the shared
 * store by the same atomic script that admits calls, so leases cannot make replicas admit more
 * than the limits; calls drawn from one cost no round trip.
 */
export class LeaseBook {
  readonly #leases = new Map<string, Lease>()
  #timer: NodeJS.Timeout | undefined

  /** `giveBack` returns a lapsed lease's unused amounts to the store (negative charges). */
  constructor (private readonly giveBack: (personId: string, charges: Array<{ check: LimitCheck['check'], amount: number }>) => void) {}

  /**
   * Draws one call's `amounts` from the lease for `owner`, when it holds them all; returns what
   * is left of each limit as far as this replica knows (the store's remainder plus the lease's).
   */
  draw (owner: string, checks: LimitCheck[], amounts: Record<QuotaResource, number>, now: number): number[] | undefined {
    const lease = this.#leases.get(owner)
    if (lease === undefined || now - lease.grantedAt >= LEASE_MAX_AGE_MS || !sameChecks(lease.checks, checks)) return undefined
    const { held } = lease
    for (let index = 0; index < checks.length; index++) {
      if (held[index]! < amounts[checks[index]!.check.resource]) return undefined
    }
    const remaining = new Array<number>(checks.length)
    for (let index = 0; index < checks.length; index++) {
      held[index]! -= amounts[checks[index]!.check.resource]
      remaining[index] = lease.storeRemaining[index]! + held[index]!
    }
    lease.usedAt = now
    return remaining
  }

  /**
   * Whether the lease for `owner` is young but holds fewer than half the calls it was granted
   * for (of `amounts`) and nothing is being fetched: time to top it up before it runs out.
   */
  low (owner: string, checks: LimitCheck[], amounts: Record<QuotaResource, number>, now: number): boolean {
    const lease = this.#leases.get(owner)
    if (lease === undefined || lease.pending !== undefined || lease.last === true || now - lease.grantedAt >= LEASE_MAX_AGE_MS / 2) return false
    for (let index = 0; index < checks.length; index++) {
      const amount = amounts[checks[index]!.check.resource]
      if (amount > 0 && lease.held[index]! < amount * lease.calls / 2) return true
    }
    return false
  }

  /** An acquisition in flight for `owner`, if any. */
  pending (owner: string): Promise<unknown> | undefined {
    return this.#leases.get(owner)?.pending
  }

  /** How many calls the next lease for `owner` asks for: double the last when it was used up. */
  nextCalls (owner: string): number {
    const lease = this.#leases.get(owner)
    return lease === undefined ? LEASE_FIRST_CALLS : Math.min(LEASE_MAX_CALLS, lease.calls * 2)
  }

  /** Marks an acquisition in flight for `owner` until `acquisition` settles. */
  acquiring (owner: string, acquisition: Promise<unknown>): void {
    const lease = this.#leases.get(owner)
    if (lease !== undefined) {
      lease.pending = acquisition
      return
    }
    // A placeholder that holds nothing: calls wait on it, and it lapses like any lease.
    this.#leases.set(owner, { checks: [], held: [], storeRemaining: [], grantedAt: 0, usedAt: 0, calls: LEASE_FIRST_CALLS / 2, pending: acquisition })
  }

  /**
   * Records a lease the store granted: `leased` more calls of `amounts` on `checks`. What an
   * older lease still holds on other counters (a new period) is given back first.
   */
  grant (owner: string, checks: LimitCheck[], amounts: Record<QuotaResource, number>, leased: number, calls: number, remaining: number[], now: number): void {
    const old = this.#leases.get(owner)
    const held = checks.map((entry) => amounts[entry.check.resource] * leased)
    if (old !== undefined && sameChecks(old.checks, checks) && now - old.grantedAt < LEASE_MAX_AGE_MS / 2) {
      // Still young: the new block joins what is left; the lease ages from its first grant, so
      // no block is used more than LEASE_MAX_AGE_MS after it was reserved.
      for (let index = 0; index < held.length; index++) held[index]! += old.held[index]!
      this.#leases.set(owner, { checks, held, storeRemaining: remaining, grantedAt: old.grantedAt, usedAt: now, calls })
      return
    }
    if (old !== undefined) this.#return(personOf(owner), old)
    this.#leases.set(owner, { checks, held, storeRemaining: remaining, grantedAt: now, usedAt: now, calls })
    this.#timer ??= setInterval(() => { this.sweep(Date.now()) }, LEASE_IDLE_MS / 2).unref()
  }

  /** A top-up was refused a lease (a limit is near): no more top-ups of this one. */
  last (owner: string): void {
    const lease = this.#leases.get(owner)
    if (lease !== undefined) lease.last = true
  }

  /** Ends an acquisition that granted nothing. */
  settled (owner: string, acquisition: Promise<unknown>): void {
    const lease = this.#leases.get(owner)
    if (lease?.pending === acquisition) delete lease.pending
    if (lease !== undefined && lease.checks.length === 0 && lease.pending === undefined) this.#leases.delete(owner)
  }

  /** Gives back every lease that is idle or too old. */
  sweep (now: number): void {
    for (const [owner, lease] of this.#leases) {
      if (lease.pending !== undefined || (now - lease.usedAt < LEASE_IDLE_MS && now - lease.grantedAt < LEASE_MAX_AGE_MS)) continue
      this.#leases.delete(owner)
      this.#return(personOf(owner), lease)
    }
    if (this.#leases.size === 0) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }

  /** Gives back every lease (the gateway is closing, or the store came back after an outage). */
  returnAll (): void {
    for (const [owner, lease] of this.#leases) this.#return(personOf(owner), lease)
    this.#leases.clear()
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** What this replica's leases hold on each of `checks`' counters. */
  heldOn (checks: Array<LimitCheck['check']>): number[] {
    const held = new Map<string, number>()
    for (const lease of this.#leases.values()) {
      lease.checks.forEach((entry, index) => { held.set(entry.check.key, (held.get(entry.check.key) ?? 0) + lease.held[index]!) })
    }
    return checks.map((check) => held.get(check.key) ?? 0)
  }

  /** Drops every lease without giving it back: the store failed, and may come back empty. */
  forget (): void {
    this.#leases.clear()
  }

  #return (person: string, lease: Lease): void {
    const charges = lease.checks.map((entry, index) => ({ check: entry.check, amount: -lease.held[index]! }))
    if (charges.some((charge) => charge.amount !== 0)) this.giveBack(person, charges)
  }
}

/** The owner of a lease: a person, or a person's key (whose own limits are counted apart). */
export function leaseOwner (personId: string, keyId: string | undefined): string {
  return keyId === undefined ? personId : `${personId}\n${keyId}`
}

function personOf (owner: string): string {
  const cut = owner.indexOf('\n')
  return cut === -1 ? owner : owner.slice(0, cut)
}
