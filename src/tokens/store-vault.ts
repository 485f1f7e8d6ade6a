import { PersonCache, type PersonChanges } from '../store/cache.js'
import type { Store } from '../store/store.js'
import { ServiceUnavailableError, SignInAgainError } from '../errors.js'
import { TokenCipher } from './crypto.js'
import type { RefreshGrant, RevokeGrant } from './grant.js'
import { TokenRecords, assertPersonId, type StoredRecord } from './records.js'
import { Refresher, SIGNED_OUT_CHANNEL, parseSignedOut, type RefresherOptions } from './refresher.js'
import type { TokenRecord, TokenSet, TokenVault } from './vault.js'

/** Cap on the on-demand margin: a token with more left than this is served as is. */
export const DEFAULT_EXPIRY_MARGIN_MS = 30_000
/** The on-demand margin is at most this share of a token's own lifetime, so short-lived tokens are not refreshed per call. */
const MARGIN_SHARE_OF_LIFETIME = 1 / 4
/** An access token is not handed out in its last second: the provider rounds expiry to whole seconds, and the call takes time. */
export const DEFAULT_EXPIRY_SKEW_MS = 1_000
/** A token that a forced refresh (after an upstream 401) produced is not force-refreshed again for this long, so a 401 loop cannot hammer the provider. */
export const DEFAULT_FORCE_COOLDOWN_MS = 10_000

/** Everything a vault needs besides its Store. */
export interface VaultOptions extends Omit<RefresherOptions, 'inactivity'> {
  /** TOKEN_ENCRYPTION_KEYS: the first encrypts, every one decrypts. */
  keys: readonly string[]
  /** PUBLIC_URL, for the "sign in again at …/auth/login" message. */
  publicUrl: string
  /** Spends a refresh token at the provider (see openidRefreshGrant). */
  grant: RefreshGrant
  /** Refresh on demand when the access token has less than this left. Default: min(30 s, refreshAheadMs / 2). */
  expiryMarginMs?: number
  /** Treat a token as expired this long before its stated expiry. */
  expirySkewMs?: number
  forceCooldownMs?: number
  /** INACTIVE_PERSON_DAYS in ms: people no access check vouches for this long are revoked (with `revoke`) and dropped. */
  inactiveAfterMs?: number
  revoke?: RevokeGrant
  /**
   * Where record changes are announced to every replica. With it, access tokens are served from
   * an in-process cache that every announced change drops; without it, every call reads the store.
   */
  changes?: PersonChanges
}

/** What the token cache keeps of a record: enough to decide whether the token may be served. */
type CachedToken = Pick<StoredRecord, 'accessToken' | 'expiresAt' | 'obtainedAt' | 'failedRefreshes' | 'retryAt'>

const UNAVAILABLE_MESSAGE = 'The sign-in provider is not answering, so your access could not be renewed; try again shortly.'

/**
 * The TokenVault over the gateway's Store. Its two implementations are the two Stores: on
 * RedisStore it serves every replica (and one of them refreshes each token); on MemoryStore it
 * serves a single process. Concurrent on-demand refreshes for one person share one promise in
 * this process and one Redis lock across replicas.
 */
export class StoreTokenVault implements TokenVault {
  readonly #records: TokenRecords
  readonly #refresher: Refresher
  readonly #inFlight = new Map<string, Promise<string>>()
  readonly #signedOutListeners: Array<(personId: string, at: number) => void> = []
  /** Per person: the token the last forced refresh produced, and when. */
  readonly #forced = new Map<string, { accessToken: string, at: number }>()
  readonly #expiryMarginMs: number
  readonly #expirySkewMs: number
  readonly #forceCooldownMs: number
  readonly #tokens: PersonCache<CachedToken> | undefined
  readonly #accessChecks: Array<(personId: string) => Promise<boolean>> = []
  #subscribed: Promise<void> | undefined

  constructor (private readonly store: Store, private readonly options: VaultOptions) {
    this.#records = new TokenRecords(store, new TokenCipher(options.keys), options.log, options.changes)
    this.#tokens = options.changes === undefined ? undefined : new PersonCache(options.changes)
    const { inactiveAfterMs, revoke } = options
    const inactivity = inactiveAfterMs === undefined || revoke === undefined
      ? undefined
      : { afterMs: inactiveAfterMs, revoke, hasAccess: async (personId: string) => await this.#hasAccess(personId) }
    this.#refresher = new Refresher(store, this.#records, options.grant, { ...options, inactivity })
    this.#expirySkewMs = options.expirySkewMs ?? DEFAULT_EXPIRY_SKEW_MS
    this.#expiryMarginMs = Math.max(this.#expirySkewMs, options.expiryMarginMs ?? Math.min(DEFAULT_EXPIRY_MARGIN_MS, options.refreshAheadMs / 2))
    this.#forceCooldownMs = options.forceCooldownMs ?? DEFAULT_FORCE_COOLDOWN_MS
  }

  async save (personId: string, sub: string, tokens: TokenSet): Promise<void> {
    const now = Date.now()
    const record: StoredRecord = {
      personId,
      sub,
      accessToken: tokens.accessToken,
      refreshToken: tokens.refreshToken,
      expiresAt: tokens.expiresAt,
      scope: tokens.scope,
      obtainedAt: now,
      failedRefreshes: 0,
    }
    await this.#records.write(personId, record, this.#refresher.dueAt(record))
  }

  async load (personId: string): Promise<TokenRecord | null> {
    const read = await this.#records.read(personId)
    if (read === null) return null
    const { obtainedAt: _obtainedAt, failedRefreshes: _failedRefreshes, ...record } = read.record
    return record
  }

  async delete (personId: string): Promise<void> {
    await this.#records.remove(personId)
  }

  cachedAccessToken (personId: string): string | undefined {
    const kept = this.#refresher.unsaved(personId) ?? this.#tokens?.get(personId)
    return kept !== undefined && this.#servable(kept, Date.now()) ? kept.accessToken : undefined
  }

  async accessToken (personId: string, options: { force?: boolean } = {}): Promise<string> {
    assertPersonId(personId)
    const force = options.force === true
    const cached = force ? undefined : this.cachedAccessToken(personId)
    if (cached !== undefined) return cached
    const ticket = this.#tokens?.ticket() ?? 0
    const read = await this.#records.read(personId)
    if (read === null) throw new SignInAgainError(this.options.publicUrl)
    const { record } = read
    const now = Date.now()
    if (force) {
      if (this.#recentlyForced(personId, record.accessToken, now)) return record.accessToken
    } else if (this.#servable(record, now)) {
      const { accessToken, expiresAt, obtainedAt, failedRefreshes, retryAt } = record
      this.#tokens?.set(personId, personId, { accessToken, expiresAt, obtainedAt, failedRefreshes, retryAt }, ticket, expiresAt)
      return record.accessToken
    }
    // The refresh is failing and backing off: no call to the provider until the backoff has passed.
    if (record.retryAt !== undefined && now < record.retryAt) throw new ServiceUnavailableError(UNAVAILABLE_MESSAGE)
    const accessToken = await this.#shareRefresh(personId, record.accessToken)
    if (force) this.#forced.set(personId, { accessToken, at: Date.now() })
    return accessToken
  }

  /** Whether this token came from a forced refresh within the cooldown: then it is served, not refreshed again. */
  #recentlyForced (personId: string, accessToken: string, now: number): boolean {
    const forced = this.#forced.get(personId)
    if (forced === undefined || now - forced.at >= this.#forceCooldownMs) {
      this.#forced.delete(personId)
      return false
    }
    return forced.accessToken === accessToken
  }

  /** Whether a token may be served as is, without an on-demand refresh. */
  #servable (token: CachedToken, now: number): boolean {
    // Capped by the token's own lifetime: a 30 s token with a 30 s margin would refresh on every call.
    const lifetime = token.expiresAt - token.obtainedAt
    const margin = Math.max(this.#expirySkewMs, Math.min(this.#expiryMarginMs, lifetime * MARGIN_SHARE_OF_LIFETIME))
    if (token.expiresAt - now > margin) return true
    // The provider is failing: the background retries with backoff; requests need not pile on.
    return token.failedRefreshes > 0 && token.expiresAt - now > this.#expirySkewMs
  }

  /** One refresh per person in this process; later callers join it. */
  async #shareRefresh (personId: string, staleAccessToken: string): Promise<string> {
    let refresh = this.#inFlight.get(personId)
    if (refresh === undefined) {
      refresh = this.#refreshOnDemand(personId, staleAccessToken).finally(() => this.#inFlight.delete(personId))
      this.#inFlight.set(personId, refresh)
    }
    return await refresh
  }

  async #refreshOnDemand (personId: string, staleAccessToken: string): Promise<string> {
    const outcome = await this.#refresher.refreshNow(personId, staleAccessToken)
    if (outcome.status === 'signed-out') throw new SignInAgainError(this.options.publicUrl)
    // Fresh or not (a failed refresh leaves the old token), a token is served only while it is valid.
    if (outcome.record.expiresAt - Date.now() > this.#expirySkewMs) return outcome.record.accessToken
    throw new ServiceUnavailableError(UNAVAILABLE_MESSAGE)
  }

  async onSignedOut (listener: (personId: string, at: number) => void): Promise<void> {
    this.#signedOutListeners.push(listener)
    this.#subscribed ??= this.store.subscribe(SIGNED_OUT_CHANNEL, (message) => {
      const { personId, at } = parseSignedOut(message)
      for (const notify of this.#signedOutListeners) notify(personId, at)
    }).catch((error: unknown) => {
      this.#subscribed = undefined
      throw error
    })
    await this.#subscribed
  }

  addAccessCheck (check: (personId: string) => Promise<boolean>): void {
    this.#accessChecks.push(check)
  }

  /** With no checks registered nobody can be told inactive. */
  async #hasAccess (personId: string): Promise<boolean> {
    if (this.#accessChecks.length === 0) return true
    const answers = await Promise.all(this.#accessChecks.map(async (check) => await check(personId)))
    return answers.some(Boolean)
  }

  /** How many people hold tokens, and the soonest access-token expiry (ms since the epoch). */
  async stats (): Promise<{ held: number, soonestExpiry: number | null }> {
    return await this.#records.stats()
  }

  start (): void {
    this.#refresher.start()
  }

  async stop (): Promise<void> {
    await this.#refresher.stop()
  }
}
