import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { Store } from '../store/store.js'
import { PersonLocks } from './locks.js'
import { ProviderConfigError, RefreshRejectedError, type GrantResult, type RefreshGrant, type RevokeGrant } from './grant.js'
import type { StoredRecord, TokenRecords } from './records.js'

/** Most refreshes one replica runs at once (REFRESH_CONCURRENCY overrides it). */
export const DEFAULT_REFRESH_CONCURRENCY = 8
/** How often each replica looks for people due for a refresh. */
export const DEFAULT_POLL_INTERVAL_MS = 1_000
/** Longest wait for the provider's token endpoint (PROVIDER_TIMEOUT_SECONDS overrides it). */
export const DEFAULT_PROVIDER_TIMEOUT_MS = 10_000
/**
 * How long a refresh lock lives unless its owner renews it. The owner renews it every third of
 * this while it works, so a replica that dies mid-refresh holds the others up only this long.
 */
export const DEFAULT_LOCK_TTL_MS = 5_000
/** How often a request waiting on another replica's refresh re-reads the record. */
export const DEFAULT_LOCK_POLL_MS = 100
/** Most a refresh is moved earlier at random, so tokens issued together do not refresh together. */
export const DEFAULT_JITTER_MS = 30_000
/** First retry delay after a transient refresh failure; doubles per failure. */
export const DEFAULT_BACKOFF_BASE_MS = 1_000
/** Longest retry delay after transient refresh failures. */
export const DEFAULT_BACKOFF_MAX_MS = 60_000
/** First retry delay for a granted result that the store did not take; doubles up to SAVE_RETRY_MAX_MS. */
export const DEFAULT_SAVE_RETRY_MS = 250
const SAVE_RETRY_MAX_MS = 2_000
/** At shutdown, how long unsaved results keep being retried before they are given up (and logged as lost). */
export const DEFAULT_SAVE_GRACE_MS = 5_000
/** A waiter gives up this long after the provider timeout: by then the lock owner has an answer or is gone. */
const WAIT_MARGIN_MS = 1_000
/** The channel on which a sign-out for a lost refresh token is published (message: person id, space, ms since the epoch). */
export const SIGNED_OUT_CHANNEL = 'person-signed-out'
// Candidates fetched per free slot: others may hold some of them already.
const CANDIDATES_PER_SLOT = 4
const MAX_ERROR_LENGTH = 200
const DEFAULT_EXPIRES_IN_SECONDS = 3600

/** How a refresh attempt ended, as counted in `gemgate_token_refreshes_total{result}`. */
export type RefreshResult = 'ok' | 'invalid_grant' | 'invalid_client' | 'transient_error'

/** Receives each refresh attempt and the number running, for the metrics. */
export interface RefreshObserver {
  refreshed: (result: RefreshResult, durationSeconds: number) => void
  inFlight?: (count: number) => void
  /** Granted results held in memory because the store did not take them yet. */
  unsaved?: (count: number) => void
}

/** People who can no longer use their tokens stop being refreshed (INACTIVE_PERSON_DAYS). */
export interface InactivityOptions {
  /** How long a person may have no way in before their tokens are revoked and dropped. */
  afterMs: number
  /** True while the person has a live session or an unexpired key. */
  hasAccess: (personId: string) => Promise<boolean>
  /** Revokes the refresh token at the provider. */
  revoke: RevokeGrant
}

/** The timing knobs of the refresher; every one has a named default. */
export interface RefresherOptions {
  /** Refresh this long before the access token expires (REFRESH_AHEAD_SECONDS, in ms). */
  refreshAheadMs: number
  concurrency?: number
  pollIntervalMs?: number
  /** PROVIDER_TIMEOUT_SECONDS in ms: a grant without an answer by then counts as a transient failure. */
  providerTimeoutMs?: number
  lockTtlMs?: number
  lockPollMs?: number
  jitterMs?: number
  backoffBaseMs?: number
  backoffMaxMs?: number
  saveRetryMs?: number
  saveGraceMs?: number
  inactivity?: InactivityOptions
  observer?: RefreshObserver
  log?: FastifyBaseLogger
}

/** Where a refresh left the person: fresh tokens, signed out, or the old tokens after a failure (none tried while backing off). */
export type RefreshOutcome =
  | { status: 'fresh', record: StoredRecord }
  | { status: 'signed-out' }
  | { status: 'failed', record: StoredRecord }

/** The signed-out announcement: who, and when their record was deleted (sessions started later stay). */
export function signedOutMessage (personId: string, at: number): string {
  return `${personId} ${at}`
}

/** Reads a signed-out announcement; one without a time (an older replica) counts as now. */
export function parseSignedOut (message: string): { personId: string, at: number } {
  const [personId = '', at] = message.split(' ')
  return { personId, at: at === undefined ? Date.now() : Number(at) }
}

/** A refresh result the provider granted but the store has not taken yet: kept, and its lock kept, until it has. */
interface Unsaved {
  record: StoredRecord
  saved: Promise<void>
}

/** Why a refresh runs: the schedule (which also retires inactive people) or a request. */
type Trigger = 'background' | 'request'

/**
 * Refreshes tokens under a per-person Redis lock, so exactly one replica spends a refresh
 * token: in the background for everyone due (bounded concurrency), and on demand for a request
 * that finds its token expiring. Under the lock it re-reads the record first, because another
 * replica may have refreshed it already. A granted result the store cannot take yet stays in
 * memory, and its lock stays held, until it is saved: the old refresh token is never spent again.
 */
export class Refresher {
  readonly #locks: PersonLocks
  readonly #active = new Map<string, Promise<void>>()
  readonly #unsaved = new Map<string, Unsaved>()
  readonly #concurrency: number
  readonly #pollIntervalMs: number
  readonly #providerTimeoutMs: number
  readonly #lockTtlMs: number
  readonly #lockPollMs: number
  readonly #jitterMs: number
  readonly #backoffBaseMs: number
  readonly #backoffMaxMs: number
  readonly #saveRetryMs: number
  #running = false
  #giveUpSavingAt = Infinity
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
    this.#providerTimeoutMs = options.providerTimeoutMs ?? DEFAULT_PROVIDER_TIMEOUT_MS
    this.#lockTtlMs = options.lockTtlMs ?? DEFAULT_LOCK_TTL_MS
    this.#lockPollMs = options.lockPollMs ?? DEFAULT_LOCK_POLL_MS
    this.#jitterMs = options.jitterMs ?? DEFAULT_JITTER_MS
    this.#backoffBaseMs = options.backoffBaseMs ?? DEFAULT_BACKOFF_BASE_MS
    this.#backoffMaxMs = options.backoffMaxMs ?? DEFAULT_BACKOFF_MAX_MS
    this.#saveRetryMs = options.saveRetryMs ?? DEFAULT_SAVE_RETRY_MS
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

  /** A granted result of this process that the store has not taken yet (serve it; never spend the old token). */
  unsaved (personId: string): StoredRecord | undefined {
    return this.#unsaved.get(personId)?.record
  }

  /** Starts polling the schedule. */
  start (): void {
    if (this.#running) return
    this.#running = true
    this.#giveUpSavingAt = Infinity
    this.#wake(0)
  }

  /** Stops polling and waits for the refreshes in flight to write their results (unsaved ones for a bounded time). */
  async stop (): Promise<void> {
    this.#running = false
    clearTimeout(this.#timer)
    await this.#polling
    await Promise.allSettled(this.#active.values())
    this.#giveUpSavingAt = Date.now() + (this.options.saveGraceMs ?? DEFAULT_SAVE_GRACE_MS)
    await Promise.allSettled([...this.#unsaved.values()].map(async (unsaved) => { await unsaved.saved }))
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
      this.options.log?.warn({ reason: String(error), cause: 'store' }, 'token refresh poll failed')
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
      if (this.#active.has(personId) || this.#unsaved.has(personId)) continue
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
    const task = this.#underLock(personId, owner, async () => await this.#refreshLocked(personId, (record) => this.isDue(record), 'background'))
      .then(() => {}, (error: unknown) => {
        // Provider failures are handled inside; what escapes is the store's.
        this.options.log?.warn({ person: personId, reason: String(error), cause: 'store' }, 'background token refresh failed')
      })
      .finally(() => {
        this.#active.delete(personId)
        this.options.observer?.inFlight?.(this.#active.size)
        if (this.#polling === undefined) this.#wake(0)
      })
    this.#active.set(personId, task)
    this.options.observer?.inFlight?.(this.#active.size)
  }

  /**
   * Runs `work` holding the person's lock, renewed while it runs. The lock is released after
   * it, or, when it left a result unsaved, once that result is saved.
   */
  async #underLock<T> (personId: string, owner: string, work: () => Promise<T>): Promise<T> {
    const stopHeartbeat = this.#locks.heartbeat(personId, owner)
    const release = async (): Promise<void> => {
      stopHeartbeat()
      await this.#locks.release(personId, owner).catch(() => {})
    }
    try {
      return await work()
    } finally {
      const unsaved = this.#unsaved.get(personId)
      if (unsaved === undefined) await release()
      else void unsaved.saved.finally(release)
    }
  }

  /**
   * Refreshes now unless the stored access token is no longer `staleAccessToken`. When another
   * replica holds the lock, waits for its write (or for its lock to go), at most a little longer
   * than the provider timeout, and reads the result.
   */
  async refreshNow (personId: string, staleAccessToken: string): Promise<RefreshOutcome> {
    // Long enough for a live owner to hear from the provider, or for a dead owner's lock to lapse.
    const deadline = Date.now() + Math.max(this.#providerTimeoutMs, this.#lockTtlMs) + WAIT_MARGIN_MS
    const isStale = (record: StoredRecord): boolean => record.accessToken === staleAccessToken
    for (;;) {
      const unsaved = this.unsaved(personId)
      if (unsaved !== undefined) return { status: 'fresh', record: unsaved }
      const owner = await this.#locks.acquire(personId)
      if (owner !== null) return await this.#underLock(personId, owner, async () => await this.#refreshLocked(personId, isStale, 'request'))
      const record = await this.#awaitOtherRefresh(personId, isStale, deadline)
      if (record === null) return { status: 'signed-out' }
      if (!isStale(record)) return { status: 'fresh', record }
      if (Date.now() >= deadline) return { status: 'failed', record }
    }
  }

  async #awaitOtherRefresh (personId: string, isStale: (record: StoredRecord) => boolean, deadline: number): Promise<StoredRecord | null> {
    for (;;) {
      await sleep(this.#lockPollMs)
      const unsaved = this.unsaved(personId)
      if (unsaved !== undefined) return unsaved
      const read = await this.records.read(personId)
      if (read === null || !isStale(read.record) || Date.now() >= deadline) return read?.record ?? null
      // The holder is gone without writing (it failed or died): the caller may try itself.
      if (!await this.#locks.held(personId)) return read.record
    }
  }

  async #refreshLocked (personId: string, isStale: (record: StoredRecord) => boolean, trigger: Trigger): Promise<RefreshOutcome> {
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
    // While a refresh is failing, requests wait for the backoff like the schedule does.
    if (trigger === 'request' && record.retryAt !== undefined && Date.now() < record.retryAt) return { status: 'failed', record }
    const inactiveSince = trigger === 'background' ? await this.#inactiveSince(personId, record) : record.inactiveSince
    if (inactiveSince !== undefined && this.options.inactivity !== undefined && Date.now() - inactiveSince >= this.options.inactivity.afterMs) {
      return await this.#retire(personId, envelope, record, this.options.inactivity.revoke)
    }
    return await this.#grantAndSave(personId, envelope, { ...record, inactiveSince }, record.refreshToken)
  }

  async #grantAndSave (personId: string, envelope: string, record: StoredRecord, refreshToken: string): Promise<RefreshOutcome> {
    // Expiry counts from when the request left: the provider's clock started no later than that.
    const sentAt = Date.now()
    const started = performance.now()
    let granted: GrantResult
    try {
      granted = await withTimeout(this.grant(refreshToken), this.#providerTimeoutMs)
    } catch (error) {
      if (error instanceof RefreshRejectedError) return await this.#signOut(personId, envelope, error, started)
      const result = error instanceof ProviderConfigError ? 'invalid_client' : 'transient_error'
      return await this.#saveFailure(personId, envelope, record, error, result, started)
    }
    this.#observe(personId, 'ok', started, {})
    return await this.#save(personId, envelope, refreshedRecord(record, granted, sentAt))
  }

  /** Whether the person still has a way in; since when they have had none (undefined: they have one, or nobody asks). */
  async #inactiveSince (personId: string, record: StoredRecord): Promise<number | undefined> {
    const inactivity = this.options.inactivity
    if (inactivity === undefined || await inactivity.hasAccess(personId)) return undefined
    return record.inactiveSince ?? Date.now()
  }

  /** Nobody can use these tokens any more: revoke them at the provider and drop them. */
  async #retire (personId: string, envelope: string, record: StoredRecord, revoke: RevokeGrant): Promise<RefreshOutcome> {
    try {
      await withTimeout(revoke(record.refreshToken!), this.#providerTimeoutMs)
    } catch (error) {
      // Dropped anyway: unused, the refresh token expires at the provider by itself.
      this.options.log?.warn({ person: personId, reason: describe(error) }, 'revoking an inactive person\'s tokens failed')
    }
    await this.records.removeIfUnchanged(personId, envelope)
    this.options.log?.info({ person: personId, inactiveSince: new Date(record.inactiveSince ?? Date.now()).toISOString() }, 'tokens retired: no session or key for INACTIVE_PERSON_DAYS')
    return { status: 'signed-out' }
  }

  /**
   * Writes the granted result over the record it came from. From the grant until the write
   * lands the result is "granted but not saved": served from memory, its lock kept, and when
   * the store fails, retried in the background.
   */
  async #save (personId: string, expected: string, record: StoredRecord): Promise<RefreshOutcome> {
    const envelope = this.records.seal(personId, record)
    let committed!: (saved: boolean) => void
    const firstTry = new Promise<boolean>((resolve) => { committed = resolve })
    this.#keepUnsaved(personId, record, firstTry.then(async (saved) => {
      if (!saved) await this.#retrySave(personId, expected, envelope, record)
    }))
    try {
      const outcome = await this.#commit(personId, expected, envelope, record)
      committed(true)
      return outcome
    } catch (error) {
      this.options.log?.warn({ person: personId, reason: String(error), cause: 'store' }, 'token refresh granted but not saved yet; retrying')
      committed(false)
      return { status: 'fresh', record }
    }
  }

  async #commit (personId: string, expected: string, envelope: string, record: StoredRecord): Promise<RefreshOutcome> {
    if (await this.records.replace(personId, expected, envelope, record, this.dueAt(record))) return { status: 'fresh', record }
    // A sign-in or sign-out landed during the refresh: it wins.
    this.options.log?.info({ person: personId }, 'token refresh discarded: the record changed during the refresh')
    const current = await this.records.read(personId)
    return current === null ? { status: 'signed-out' } : { status: 'fresh', record: current.record }
  }

  #keepUnsaved (personId: string, record: StoredRecord, saving: Promise<void>): void {
    const saved = saving.finally(() => {
      this.#unsaved.delete(personId)
      this.options.observer?.unsaved?.(this.#unsaved.size)
    })
    this.#unsaved.set(personId, { record, saved })
    this.options.observer?.unsaved?.(this.#unsaved.size)
  }

  async #retrySave (personId: string, expected: string, envelope: string, record: StoredRecord): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      await sleep(Math.min(SAVE_RETRY_MAX_MS, this.#saveRetryMs * 2 ** attempt))
      try {
        await this.#commit(personId, expected, envelope, record)
        this.options.log?.info({ person: personId, attempts: attempt + 2 }, 'token refresh saved')
        return
      } catch (error) {
        if (Date.now() < this.#giveUpSavingAt) continue
        this.options.log?.error({ person: personId, reason: String(error), cause: 'store' }, 'token refresh never saved: the person may have to sign in again')
        return
      }
    }
  }

  async #signOut (personId: string, envelope: string, error: RefreshRejectedError, started: number): Promise<RefreshOutcome> {
    this.#observe(personId, 'invalid_grant', started, { error: error.error })
    // Only the record we read: a sign-in that happened meanwhile brought a new refresh token.
    if (!await this.records.removeIfUnchanged(personId, envelope)) {
      const current = await this.records.read(personId)
      return current === null ? { status: 'signed-out' } : { status: 'fresh', record: current.record }
    }
    // With the time of the delete: a session started after it belongs to a new sign-in and stays.
    await this.store.publish(SIGNED_OUT_CHANNEL, signedOutMessage(personId, Date.now()))
    return { status: 'signed-out' }
  }

  async #saveFailure (personId: string, envelope: string, old: StoredRecord, error: unknown, result: RefreshResult, started: number): Promise<RefreshOutcome> {
    const failedRefreshes = old.failedRefreshes + 1
    const reason = describe(error)
    this.#observe(personId, result, started, { error: reason, failedRefreshes })
    const backoff = Math.min(this.#backoffMaxMs, this.#backoffBaseMs * 2 ** (failedRefreshes - 1))
    const retryAt = Date.now() + backoff * (0.5 + Math.random() / 2)
    const record: StoredRecord = { ...old, failedRefreshes, lastRefreshError: reason, retryAt }
    try {
      await this.records.replace(personId, envelope, this.records.seal(personId, record), record, retryAt)
    } catch (storeError) {
      // The provider's failure stands; only its bookkeeping is lost (the next try comes sooner).
      this.options.log?.warn({ person: personId, reason: String(storeError), cause: 'store' }, 'token refresh failure not recorded')
    }
    return { status: 'failed', record }
  }

  #observe (personId: string, result: RefreshResult, started: number, details: Record<string, unknown>): void {
    const seconds = (performance.now() - started) / 1000
    this.options.observer?.refreshed(result, seconds)
    // invalid_client is the operator's to fix (a wrong client secret), not a person's problem.
    const level = result === 'ok' ? 'info' : result === 'invalid_client' ? 'error' : 'warn'
    const cause = result === 'invalid_client' ? { cause: 'configuration' } : result === 'ok' ? {} : { cause: 'provider' }
    this.options.log?.[level]({ person: personId, result, durationMs: Math.round(seconds * 1000), ...cause, ...details }, 'token refresh')
  }
}

/** The record after a granted refresh: new tokens, expiry counted from `sentAt`, failures cleared. */
function refreshedRecord (old: StoredRecord, granted: GrantResult, sentAt: number): StoredRecord {
  return {
    ...old,
    accessToken: granted.accessToken,
    // A rotated refresh token replaces the old one in this same write.
    refreshToken: granted.refreshToken ?? old.refreshToken,
    expiresAt: sentAt + (granted.expiresInSeconds ?? DEFAULT_EXPIRES_IN_SECONDS) * 1000,
    scope: granted.scope ?? old.scope,
    obtainedAt: sentAt,
    lastRefreshAt: Date.now(),
    lastRefreshError: undefined,
    failedRefreshes: 0,
    retryAt: undefined,
  }
}

/** Rejects with a timeout error when `promise` has not settled after `ms` (it is not cancelled). */
async function withTimeout<T> (promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`the provider did not answer within ${ms} ms`)) }, ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
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
