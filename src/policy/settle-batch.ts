import type { QuotaCheck } from '../store/quota.js'
import type { Store } from '../store/store.js'
import { addFields } from './usage.js'

/**
 * How long settlements wait to be written together: one script per person per interval, not one
 * per call. Until then a reservation counts as reserved, which errs on the safe side (reservations
 * are upper bounds); a prompt Google counted above its estimate shows this much later.
 */
export const SETTLE_BATCH_MS = 20

type Charge = { check: QuotaCheck, amount: number }
type UsageEntry = { key: string, ttlMs: number, fields: Record<string, number> }
interface PersonBatch { charges: Map<string, Charge>, usage: Map<string, UsageEntry> }

/** Settlements of calls, summed per person and counter, written by one script per person each {@link SETTLE_BATCH_MS}. */
export class SettleBatch {
  #pending = new Map<string, PersonBatch>()
  #timer: NodeJS.Timeout | undefined

  constructor (private readonly store: Store, private readonly onError: (error: unknown) => void) {}

  /** Adds one call's corrections (and its usage) to its person's batch. */
  add (personId: string, charges: Charge[], usage?: UsageEntry): void {
    let batch = this.#pending.get(personId)
    if (batch === undefined) this.#pending.set(personId, batch = { charges: new Map(), usage: new Map() })
    for (const { check, amount } of charges) {
      const summed = batch.charges.get(check.key)
      if (summed === undefined) batch.charges.set(check.key, { check, amount })
      else summed.amount += amount
    }
    if (usage !== undefined) {
      const summed = batch.usage.get(usage.key)
      if (summed === undefined) batch.usage.set(usage.key, { ...usage, fields: { ...usage.fields } })
      else addFields(summed.fields, usage.fields)
    }
    this.#timer ??= setTimeout(() => { void this.flush() }, SETTLE_BATCH_MS).unref()
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
      const [first, ...others] = [...batch.usage.values()]
      const writes = [{ charges: [...batch.charges.values()], ...(first === undefined ? {} : { usage: first }) }, ...others.map((usage) => ({ charges: [], usage }))]
      for (const settlement of writes) await this.store.settleQuota(settlement).catch(this.onError)
    }))
  }
}
