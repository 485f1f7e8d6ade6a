import type { QuotaAnswer, QuotaCheck, QuotaRequest, QuotaSettlement } from './quota.js'

/**
 * The few storage verbs the gateway needs, so sessions, tokens and keys run on Redis in
 * production and in memory for a single replica. Values are opaque strings: callers encrypt
 * what must not be readable. TTLs are in milliseconds.
 */
export interface Store {
  /** `memory` or `redis`: what readiness and the start-up warning report. */
  readonly kind: 'memory' | 'redis'
  get (key: string): Promise<string | null>
  set (key: string, value: string, ttlMs?: number): Promise<void>
  /** Sets only when the key is absent (a lock or a one-time marker); true when it did. */
  setIfAbsent (key: string, value: string, ttlMs: number): Promise<boolean>
  /** Reads and deletes in one atomic step, so a one-time value is taken at most once. */
  take (key: string): Promise<string | null>
  delete (...keys: string[]): Promise<void>
  /** Deletes only while the key still holds `value` (releasing a lock its owner holds). */
  deleteIfEquals (key: string, value: string): Promise<boolean>
  /** Resets a key's time to live (idle expiry); false when the key is gone. */
  expire (key: string, ttlMs: number): Promise<boolean>
  addToSet (key: string, member: string): Promise<void>
  removeFromSet (key: string, member: string): Promise<void>
  setMembers (key: string): Promise<string[]>
  /** Puts `member` in a schedule (a sorted set) at `dueAt` (ms since the epoch). */
  schedule (key: string, member: string, dueAt: number): Promise<void>
  unschedule (key: string, member: string): Promise<void>
  /** Members due at or before `now`, soonest first, at most `limit`. */
  due (key: string, now: number, limit: number): Promise<string[]>
  /** The soonest due time in a schedule and the number of members. */
  scheduleStats (key: string): Promise<{ size: number, soonest: number | null }>
  /** Adds to numeric fields of a hash (usage counters). */
  incrementFields (key: string, increments: Record<string, number>): Promise<void>
  getFields (key: string): Promise<Record<string, string>>
  /**
   * Checks every quota of a call and, when all allow it, reserves on all of them in one atomic
   * step (no other replica's call interleaves); the output it may have is lowered to what fits.
   */
  reserveQuota (request: QuotaRequest): Promise<QuotaAnswer>
  /** Corrects a reservation by the call's real usage and adds to its usage hash, atomically. */
  settleQuota (settlement: QuotaSettlement): Promise<void>
  /** What each quota has used (a per-minute bucket: what has not refilled yet). */
  quotaUsed (checks: QuotaCheck[]): Promise<number[]>
  publish (channel: string, message: string): Promise<void>
  /**
   * Calls `listener` with every message published on `channel` (by any process) once the
   * returned promise resolves. `onGap` runs when messages may have been missed (the connection
   * that receives them dropped, or came back): whoever caches on the strength of them must forget.
   */
  subscribe (channel: string, listener: (message: string) => void, onGap?: () => void): Promise<void>
  /** Resolves when the store answers; rejects with the cause otherwise. */
  ping (): Promise<void>
  close (): Promise<void>
}
