/** Tokens as the provider issued them, with the absolute access-token expiry. */
export interface TokenSet {
  accessToken: string
  refreshToken?: string
  /** Milliseconds since the epoch when the access token expires. */
  expiresAt: number
  scope?: string
}

/** One person's stored tokens and refresh bookkeeping (decrypted). */
export interface TokenRecord extends TokenSet {
  personId: string
  sub: string
  lastRefreshAt?: number
  lastRefreshError?: string
}

/**
 * Per-person OAuth tokens, encrypted at rest, refreshed before they expire.
 * Sessions and gateway keys point at the person, so one record serves them all.
 */
export interface TokenVault {
  /** Stores a person's tokens (after sign-in) and schedules their refresh. */
  save (personId: string, sub: string, tokens: TokenSet): Promise<void>
  /** The decrypted record, or null when the person has none (signed out, invalid_grant). */
  load (personId: string): Promise<TokenRecord | null>
  /** Forgets a person's tokens and unschedules them (sign-out). */
  delete (personId: string): Promise<void>
  /**
   * A valid access token, refreshed on demand when it is expired or about to be
   * (`force` after an upstream 401). Throws SignInAgainError (401) when the person must sign in again.
   */
  accessToken (personId: string, options?: { force?: boolean }): Promise<string>
  /**
   * The access token when this process holds it and it may be served as is; undefined otherwise
   * (then `accessToken` reads, or refreshes, it). Synchronous: no promise per proxied call.
   */
  cachedAccessToken (personId: string): string | undefined
  /**
   * Calls `listener` with the person id whenever any replica signs a person out because the
   * provider refused their refresh token (invalid_grant), so sessions and keys can be dropped;
   * `at` is when the record was deleted: what a new sign-in started after it must stay.
   */
  onSignedOut (listener: (personId: string, at: number) => void): Promise<void>
  /**
   * Adds a way to tell whether a person can still use their tokens (a live session, an unexpired
   * key). With INACTIVE_PERSON_DAYS set, people for whom no check says yes stop being refreshed.
   */
  addAccessCheck (check: (personId: string) => Promise<boolean>): void
  /** Starts / stops the background refresher. */
  start (): void
  stop (): Promise<void>
}
