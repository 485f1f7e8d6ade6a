import type { QuotaCheck, QuotaResource } from '../store/quota.js'
import type { Store } from '../store/store.js'
import type { LimitCheck } from './checks.js'
import { LabelSums, type UsageEntry } from './usage.js'

/**
 * How long settlements wait to be written together: one script per person per interval, not one
 * per call. Until then a reservation counts as reserved, which errs on the safe side (reservations
 * are upper bounds); a prompt Google counted above its estimate shows this much later. Each script
 * costs the event loop a write and a read (tens of µs on a virtual machine): at 20 ms they were
 * 3-4% of a busy gateway's CPU under a policy, at 100 ms under 1% (npm run bench:compare).
 */
export const SETTLE_BATCH_MS = 100

type Charge = { check: QuotaCheck, amount: number }
interface PersonBatch { charges: Map<string, Charge>, usage: Map<string, { key: string, ttlMs: number, sums: LabelSums }> }

/** Settlements of calls, summed per person and counter, written by one script per person each {@link SETTLE_BATCH_MS}. */
export class SettleBatch {
  #pending = new Map<string, PersonBatch>()
  #timer: NodeJS.Timeout | undefined

  constructor (private readonly store: Store, private readonly onError: (error: unknown) => void) {}

  /** Adds corrections (a lease given back, a reservation released) to a person's batch. */
  add (personId: string, charges: Charge[]): void {
    const batch = this.#batch(personId)
    for (const { check, amount } of charges) charge(batch, check, amount)
  }

  /** Adds one settled call to its person's batch: each check corrected by its resource's delta, and the call's usage. */
  addCall (personId: string, checks: readonly LimitCheck[], deltas: Readonly<Record<QuotaResource, number>>, usage: UsageEntry): void {
    const batch = this.#batch(personId)
    for (const entry of checks) charge(batch, entry.check, deltas[entry.check.resource])
    let summed = batch.usage.get(usage.key)
    if (summed === undefined) batch.usage.set(usage.key, summed = { key: usage.key, ttlMs: usage.ttlMs, sums: new LabelSums() })
    summed.sums.add(usage.call.label, usage.call.counts)
  }

  #batch (personId: string): PersonBatch {
    let batch = this.#pending.get(personId)
    if (batch === undefined) this.#pending.set(personId, batch = { charges: new Map(), usage: new Map() })
    this.#timer ??= setTimeout(() => { void this.flush() }, SETTLE_BATCH_MS).unref()
    return batch
  }

  /**
   * Writes every batch. One that fails is not written again: a script that timed out may have
   * run, and counting a call twice is worse than a missed correction (the reservation stands).
   */
  async flush (): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    const batches = this.#pending
    this.#pending = new Map()
    await Promise.all([...batches.values()].map(async (batch) => {
      const [first, ...others] = [...batch.usage.values()].map(({ key, ttlMs, sums }) => ({ key, ttlMs, fields: sums.fields() }))
      const writes = [{ charges: [...batch.charges.values()], ...(first === undefined ? {} : { usage: first }) }, ...others.map((usage) => ({ charges: [], usage }))]
      for (const settlement of writes) await this.store.settleQuota(settlement).catch(this.onError)
    }))
  }
}

function charge (batch: PersonBatch, check: QuotaCheck, amount: number): void {
  const summed = batch.charges.get(check.key)
  if (summed === undefined) batch.charges.set(check.key, { check, amount })
  else summed.amount += amount
}
