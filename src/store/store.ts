import type { StoreStatus } from './status.js'

/** Which entries of a log {@link Store.readLog} answers. */
export interface LogRange {
  fromMs: number
  toMs: number
  count: number
  /** An entry id: only entries after it (the next page). */
  after?: string
}

/** One entry of an append-only log: its id (`<ms>-<sequence>`) and what was appended. */
export interface LogEntry {
  id: string
  entry: string
}
import type { QuotaAnswer, QuotaCheck, QuotaRequest, QuotaSettlement } from './quota.js'

/**
 * The few storage verbs the gateway needs, so sessions, tokens and keys run on Redis in
 * production and in memory for a single replica. Values are opaque strings: callers encrypt
 * what must not be readable. TTLs are in milliseconds.
 */
export interface Store {
  /** `memory` or `redis`: what readiness and the start-up warning report. */
  readonly kind: 'memory' | 'redis'
  /** Whether the store answers; absent for a store that cannot be unreachable (memory). */
  readonly status?: StoreStatus
  get (key: string): Promise<string | null>
  set (key: string, value: string, ttlMs?: number): Promise<void>
  /** Sets only when the key is absent (a lock or a one-time marker); true when it did. */
  setIfAbsent (key: string, value: string, ttlMs: number): Promise<boolean>
  /** Reads and deletes in one atomic step, so a one-time value is taken at most once. */
  take (key: string): Promise<string | null>
  delete (...keys: string[]): Promise<void>
  /** Deletes only while the key still holds `value` (releasing a lock its owner holds). */
  deleteIfEquals (key: string, value: string): Promise<boolean>
  /**
   * Compare-and-set in one atomic step: replaces the value only while the key still holds
   * `expected` (a refresh result must not overwrite a sign-in or revive a sign-out); true when it did.
   */
  setIfEquals (key: string, expected: string, value: string, ttlMs?: number): Promise<boolean>
  /** Resets a key's time to live only while it still holds `value` (a lock's owner renewing it); true when it did. */
  expireIfEquals (key: string, value: string, ttlMs: number): Promise<boolean>
  /** Resets a key's time to live (idle expiry); false when the key is gone. */
  expire (key: string, ttlMs: number): Promise<boolean>
  addToSet (key: string, member: string): Promise<void>
  /**
   * Adds `member` to a set only while the set holds fewer than `limit` members, in one atomic
   * step (a per-person cap that concurrent adds cannot overshoot). True when the member is in
   * the set afterwards (added, or already there).
   */
  addToSetIfBelow (key: string, member: string, limit: number): Promise<boolean>
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
  /** One field of a hash; null when the hash or the field is absent. */
  getField (key: string, field: string): Promise<string | null>
  /** Sets text fields of a hash (an index kept in one hash: one read lists it all). */
  setFields (key: string, fields: Record<string, string>): Promise<void>
  /**
   * Appends `entry` to an append-only log (a Redis stream) and drops what is older than
   * `retainMs`. Entries get increasing ids that start with their time in ms.
   */
  appendToLog (key: string, entry: string, retainMs: number): Promise<void>
  /** Log entries with `fromMs <= time <= toMs`, oldest first, at most `count`, after the entry id `after` if given. */
  readLog (key: string, range: LogRange): Promise<LogEntry[]>
  /**
   * Checks every quota of a call and, when all allow it, reserves on all of them in one atomic
   * step (no other replica's call interleaves); the output it may have is lowered to what fits.
   */
  reserveQuota (request: QuotaRequest): Promise<QuotaAnswer>
  /** Corrects a reservation by the call's real usage and adds to its usage hash, atomically. */
  settleQuota (settlement: QuotaSettlement): Promise<void>
  /** What each quota has used (a per-minute bucket: what has not refilled yet). */
  quotaUsed (checks: QuotaCheck[]): Promise<number[]>
  /**
   * Sends `message` to every subscriber of `channel`, in every process. Two messages may arrive
   * in either order (on a Cluster each may enter through another node): publish only what can be
   * applied in any order.
   */
  publish (channel: string, message: string): Promise<void>
  /**
   * Calls `listener` with every message published on `channel` (by any process) once the
   * returned promise resolves, which waits (retrying) while the store is unreachable. `onGap`
   * runs with `lost` when the connection that receives messages dropped (from now on they may be
   * missed) and with `back` when it returned (some may have been missed): whoever caches on the
   * strength of them must forget.
   */
  subscribe (channel: string, listener: (message: string) => void, onGap?: (phase: 'lost' | 'back') => void): Promise<void>
  /** Resolves when the store answers; rejects with the cause otherwise. */
  ping (): Promise<void>
  close (): Promise<void>
}
