import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { Store } from '../store/store.js'
import { RefreshRejectedError, type RefreshGrant } from './grant.js'
import type { StoredRecord, TokenRecords } from './records.js'

/** Most refreshes one replica runs at once (REFRESH_CONCURRENCY overrides it). */
export const DEFAULT_REFRESH_CONCURRENCY = 8
/** How often each replica looks for people due for a refresh. */
export const DEFAULT_POLL_INTERVAL_MS = 1_000
/** How long a refresh lock lives if its owner dies; well above the provider timeout (10 s). */
export const DEFAULT_LOCK_TTL_MS = 30_000
/** How often a request waiting on another replica's refresh re-reads the record. */
export const DEFAULT_LOCK_POLL_MS = 100
/** Most a refresh is moved earlier at random, so tokens issued together do not refresh together. */
export const DEFAULT_JITTER_MS = 30_000
/** First retry delay after a transient refresh failure; doubles per failure. */
export const DEFAULT_BACKOFF_BASE_MS = 1_000
/** Longest retry delay after transient refresh failures. */
export const DEFAULT_BACKOFF_MAX_MS = 60_000
/** The channel on which a sign-out for a lost refresh token is published (message: person id). */
export const SIGNED_OUT_CHANNEL = 'person-signed-out'
// Candidates fetched per free slot: others may hold some of them already.
const CANDIDATES_PER_SLOT = 4
const MAX_ERROR_LENGTH = 200

/** How a refresh attempt ended, as counted in `gemgate_token_refreshes_total{result}`. */
export type RefreshResult = 'ok' | 'invalid_grant' | 'transient_error'

/** Receives each refresh attempt and the number running, for the metrics. */
export interface RefreshObserver {
  refreshed: (result: RefreshResult, durationSeconds: number) => void
  inFlight?: (count: number) => void
}

/** The timing knobs of the refresher; every one has a named default. */
export interface RefresherOptions {
  /** Refresh this long before the access token expires (REFRESH_AHEAD_SECONDS, in ms). */
  refreshAheadMs: number
  concurrency?: number
  pollIntervalMs?: number
  lockTtlMs?: number
  lockPollMs?: number
  jitterMs?: number
  backoffBaseMs?: number
  backoffMaxMs?: number
  observer?: RefreshObserver
  log?: FastifyBaseLogger
}

/** Where a refresh left the person: fresh tokens, signed out, or the old tokens after a transient failure. */
export type RefreshOutcome =
  | { status: 'fresh', record: StoredRecord }
  | { status: 'signed-out' }
  | { status: 'failed', record: StoredRecord }

const lockKey = (personId: string): string => `person:${personId}:token-lock`

/** A per-person lock across replicas: SET NX PX with a random owner token, released only by that owner. */
class PersonLocks {
  constructor (private readonly store: Store, private readonly ttlMs: number) {}

  async acquire (personId: string): Promise<string | null> {
    const owner = randomBytes(16).toString('base64url')
    return await this.store.setIfAbsent(lockKey(personId), owner, this.ttlMs) ? owner : null
  }

  async release (personId: string, owner: string): Promise<void> {
    await this.store.deleteIfEquals(lockKey(personId), owner)
  }

  async held (personId: string): Promise<boolean> {
    return await this.store.get(lockKey(personId)) !== null
  }
}

/**
 * Refreshes tokens under a per-person Redis lock, so exactly one replica spends a refresh
 * token: in the background for everyone due (bounded concurrency), and on demand for a request
 * that finds its token expiring. Under the lock it re-reads the record first, because another
 * replica may have refreshed it already.
 */
export class Refresher {
  readonly #locks: PersonLocks
  readonly #active = new Map<string, Promise<void>>()
  readonly #concurrency: number
  readonly #pollIntervalMs: number
  readonly #lockTtlMs: number
  readonly #lockPollMs: number
  readonly #jitterMs: number
  readonly #backoffBaseMs: number
  readonly #backoffMaxMs: number
  #running = false
  #polling: Promise<void> | undefined
  #timer: NodeJS.Timeout | undefined

  constructor (
    private readonly store: Store,
    private readonly records: TokenRecords,
    private readonly grant: RefreshGrant,
    private readonly options: RefresherOptions,
  ) {
    this.#concurrency = options.concurrency ?? DEFAULT_REFRESH_CONCURRENCY
    this.#pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS
    this.#lockTtlMs = options.lockTtlMs ?? DEFAULT_LOCK_TTL_MS
    this.#lockPollMs = options.lockPollMs ?? DEFAULT_LOCK_POLL_MS
    this.#jitterMs = options.jitterMs ?? DEFAULT_JITTER_MS
    this.#backoffBaseMs = options.backoffBaseMs ?? DEFAULT_BACKOFF_BASE_MS
    this.#backoffMaxMs = options.backoffMaxMs ?? DEFAULT_BACKOFF_MAX_MS
    this.#locks = new PersonLocks(store, this.#lockTtlMs)
  }

  /** When this record should next be refreshed: `refreshAheadMs` before expiry, moved earlier by jitter. */
  dueAt (record: StoredRecord): number {
    const { earliest, latest } = this.#window(record)
    return earliest + Math.random() * (latest - earliest)
  }

  /** True once the record has entered its refresh window. */
  isDue (record: StoredRecord, now = Date.now()): boolean {
    return now >= this.#window(record).earliest
  }

  #window (record: StoredRecord): { earliest: number, latest: number } {
    const lifetime = Math.max(0, record.expiresAt - record.obtainedAt)
    // Never ahead by more than half the lifetime: short-lived tokens must not refresh in a loop.
    const latest = record.expiresAt - Math.min(this.options.refreshAheadMs, lifetime / 2)
    return { earliest: latest - Math.min(this.#jitterMs, lifetime / 8), latest }
  }

  /** Starts polling the schedule. */
  start (): void {
    if (this.#running) return
    this.#running = true
    this.#wake(0)
  }

  /** Stops polling and waits for the refreshes in flight to write their results. */
  async stop (): Promise<void> {
    this.#running = false
    clearTimeout(this.#timer)
    await this.#polling
    await Promise.allSettled(this.#active.values())
  }

  #wake (delayMs: number): void {
    if (!this.#running) return
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => { void this.#poll() }, delayMs)
    this.#timer.unref()
  }

  async #poll (): Promise<void> {
    if (this.#polling !== undefined) return
    let claimedAll = false
    this.#polling = this.#claimDue().then((full) => { claimedAll = full }, (error: unknown) => {
      this.options.log?.warn({ reason: String(error) }, 'token refresh poll failed')
    })
    await this.#polling
    this.#polling = undefined
    // A full batch means more may be waiting: look again as soon as a slot frees.
    this.#wake(claimedAll && this.#active.size < this.#concurrency ? 0 : this.#pollIntervalMs)
  }

  /** Claims due people into free slots; true when it filled every slot it looked for. */
  async #claimDue (): Promise<boolean> {
    const free = this.#concurrency - this.#active.size
    if (free <= 0) return false
    const candidates = await this.records.due(Date.now(), free * CANDIDATES_PER_SLOT)
    let claimed = 0
    for (const personId of candidates) {
      if (!this.#running || this.#active.size >= this.#concurrency) break
      if (this.#active.has(personId)) continue
      const owner = await this.#locks.acquire(personId)
      if (owner === null) continue
      // A lease: others stop seeing this person as due; if we die it is due again once the lock expires.
      await this.records.reschedule(personId, Date.now() + this.#lockTtlMs)
      this.#runClaimed(personId, owner)
      claimed++
    }
    return claimed === free
  }

  #runClaimed (personId: string, owner: string): void {
    const task = this.#refreshLocked(personId, (record) => this.isDue(record))
      .then(() => {}, (error: unknown) => {
        this.options.log?.warn({ person: personId, reason: String(error) }, 'background token refresh failed')
      })
      .finally(async () => {
        await this.#locks.release(personId, owner).catch(() => {})
        this.#active.delete(personId)
        this.options.observer?.inFlight?.(this.#active.size)
        if (this.#polling === undefined) this.#wake(0)
      })
    this.#active.set(personId, task)
    this.options.observer?.inFlight?.(this.#active.size)
  }

  /**
   * Refreshes now unless the stored access token is no longer `staleAccessToken`. When another
   * replica holds the lock, waits for its write (or for its lock to go) and reads the result.
   */
  async refreshNow (personId: string, staleAccessToken: string): Promise<RefreshOutcome> {
    const deadline = Date.now() + this.#lockTtlMs + this.#lockPollMs
    const isStale = (record: StoredRecord): boolean => record.accessToken === staleAccessToken
    for (;;) {
      const owner = await this.#locks.acquire(personId)
      if (owner !== null) {
        try {
          return await this.#refreshLocked(personId, isStale)
        } finally {
          await this.#locks.release(personId, owner)
        }
      }
      const record = await this.#awaitOtherRefresh(personId, isStale, deadline)
      if (record === null) return { status: 'signed-out' }
      if (!isStale(record)) return { status: 'fresh', record }
      if (Date.now() >= deadline) return { status: 'failed', record }
    }
  }

  async #awaitOtherRefresh (personId: string, isStale: (record: StoredRecord) => boolean, deadline: number): Promise<StoredRecord | null> {
    for (;;) {
      await sleep(this.#lockPollMs)
      const read = await this.records.read(personId)
      if (read === null || !isStale(read.record) || Date.now() >= deadline) return read?.record ?? null
      // The holder is gone without writing (it failed or died): the caller may try itself.
      if (!await this.#locks.held(personId)) return read.record
    }
  }

  async #refreshLocked (personId: string, isStale: (record: StoredRecord) => boolean): Promise<RefreshOutcome> {
    const read = await this.records.read(personId)
    if (read === null) {
      await this.records.unschedule(personId)
      return { status: 'signed-out' }
    }
    const { record, envelope } = read
    if (!isStale(record)) {
      await this.records.reschedule(personId, this.dueAt(record))
      return { status: 'fresh', record }
    }
    if (record.refreshToken === undefined) {
      // Nothing to refresh with: the record simply expires with its access token.
      await this.records.unschedule(personId)
      return { status: 'failed', record }
    }
    const started = performance.now()
    try {
      const granted = await this.grant(record.refreshToken)
      return await this.#saveRefreshed(personId, envelope, record, granted, started)
    } catch (error) {
      if (error instanceof RefreshRejectedError) return await this.#signOut(personId, envelope, error, started)
      return await this.#saveFailure(personId, envelope, record, error, started)
    }
  }

  async #saveRefreshed (personId: string, envelope: string, old: StoredRecord, granted: Awaited<ReturnType<RefreshGrant>>, started: number): Promise<RefreshOutcome> {
    const now = Date.now()
    const record: StoredRecord = {
      ...old,
      accessToken: granted.accessToken,
      // A rotated refresh token replaces the old one in this same write.
      refreshToken: granted.refreshToken ?? old.refreshToken,
      expiresAt: now + (granted.expiresInSeconds ?? 3600) * 1000,
      scope: granted.scope ?? old.scope,
      obtainedAt: now,
      lastRefreshAt: now,
      lastRefreshError: undefined,
      failedRefreshes: 0,
    }
    const written = await this.records.replace(personId, envelope, record, this.dueAt(record))
    this.#observe(personId, 'ok', started, written ? {} : { discarded: 'record changed during the refresh' })
    if (written) return { status: 'fresh', record }
    const current = await this.records.read(personId)
    return current === null ? { status: 'signed-out' } : { status: 'fresh', record: current.record }
  }

  async #signOut (personId: string, envelope: string, error: RefreshRejectedError, started: number): Promise<RefreshOutcome> {
    this.#observe(personId, 'invalid_grant', started, { error: error.error })
    // Only the record we read: a sign-in that happened meanwhile brought a new refresh token.
    if (!await this.records.removeIfUnchanged(personId, envelope)) {
      const current = await this.records.read(personId)
      return current === null ? { status: 'signed-out' } : { status: 'fresh', record: current.record }
    }
    await this.store.publish(SIGNED_OUT_CHANNEL, personId)
    return { status: 'signed-out' }
  }

  async #saveFailure (personId: string, envelope: string, old: StoredRecord, error: unknown, started: number): Promise<RefreshOutcome> {
    const failedRefreshes = old.failedRefreshes + 1
    const reason = describe(error)
    this.#observe(personId, 'transient_error', started, { error: reason, failedRefreshes })
    const record: StoredRecord = { ...old, failedRefreshes, lastRefreshError: reason }
    const backoff = Math.min(this.#backoffMaxMs, this.#backoffBaseMs * 2 ** (failedRefreshes - 1))
    const retryAt = Date.now() + backoff * (0.5 + Math.random() / 2)
    await this.records.replace(personId, envelope, record, retryAt)
    return { status: 'failed', record }
  }

  #observe (personId: string, result: RefreshResult, started: number, details: Record<string, unknown>): void {
    const seconds = (performance.now() - started) / 1000
    this.options.observer?.refreshed(result, seconds)
    const level = result === 'ok' ? 'info' : 'warn'
    this.options.log?.[level]({ person: personId, result, durationMs: Math.round(seconds * 1000), ...details }, 'token refresh')
  }
}

function describe (error: unknown): string {
  const { error: code, status, cause, message } = error as { error?: unknown, status?: unknown, cause?: unknown, message?: unknown }
  // openid-client: ResponseBodyError has the OAuth error; others carry the Response or a network error as cause.
  const causeStatus = (cause as { status?: unknown } | undefined)?.status
  const text = typeof code === 'string'
    ? `${code} (HTTP ${String(status)})`
    : `${String(message ?? error)}${typeof causeStatus === 'number' ? ` (HTTP ${causeStatus})` : cause instanceof Error ? `: ${cause.message}` : ''}`
  return text.slice(0, MAX_ERROR_LENGTH)
}
