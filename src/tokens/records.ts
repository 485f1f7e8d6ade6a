import type { FastifyBaseLogger } from 'fastify'
import type { PersonChanges } from '../store/cache.js'
import type { Store } from '../store/store.js'
import { TokenDecryptError, type TokenCipher } from './crypto.js'
import type { TokenRecord } from './vault.js'

/** Members: person ids; scores: when their tokens are next due for a refresh (ms). */
export const REFRESH_SCHEDULE_KEY = 'tokens:refresh-due'
/** Members: person ids; scores: when their access token expires (ms). Feeds the metrics. */
export const EXPIRY_INDEX_KEY = 'tokens:expiry'
const PERSON_ID = /^[\w-]{8,128}$/

const recordKey = (personId: string): string => `person:${personId}:tokens`

/** A record as stored: the public fields plus the refresher's bookkeeping. */
export interface StoredRecord extends TokenRecord {
  /** When these tokens were obtained (sign-in or refresh), to know their lifetime. */
  obtainedAt: number
  /** Transient refresh failures in a row, for the backoff. */
  failedRefreshes: number
  /** After a failed refresh: no refresh is tried before this (ms), so requests cannot hammer a failing provider. */
  retryAt?: number
  /** Since when (ms) the person has had no live session and no unexpired key, as seen at a refresh. */
  inactiveSince?: number
}

/** One read: the record and the exact ciphertext it came from (a version for compare-and-set). */
export interface ReadRecord {
  record: StoredRecord
  envelope: string
}

// Without a refresh token the record is worth nothing once the access token expires.
function recordTtlMs (record: StoredRecord): number | undefined {
  return record.refreshToken === undefined ? Math.max(1, record.expiresAt - Date.now()) : undefined
}

/** Throws unless `personId` looks like a person id (a hash), so raw input never names a key. */
export function assertPersonId (personId: string): void {
  if (!PERSON_ID.test(personId)) throw new TypeError('personId must be the hashed person id')
}

/**
 * Encrypted token records over the Store, one key per person, plus the refresh schedule and
 * the expiry index. Every write seals under the first key, which is how a record under a
 * retired key gets re-encrypted.
 */
export class TokenRecords {
  constructor (
    private readonly store: Store,
    private readonly cipher: TokenCipher,
    private readonly log?: FastifyBaseLogger,
    private readonly changes?: PersonChanges,
  ) {}

  /** The record, or null when there is none or no configured key opens it. */
  async read (personId: string): Promise<ReadRecord | null> {
    assertPersonId(personId)
    const envelope = await this.store.get(recordKey(personId))
    if (envelope === null) return null
    try {
      const { plaintext } = this.cipher.decrypt(envelope, personId)
      return { record: { personId, ...JSON.parse(plaintext) as Omit<StoredRecord, 'personId'> }, envelope }
    } catch (error) {
      if (!(error instanceof TokenDecryptError)) throw error
      // Treated as signed out; left in place so restoring a removed key brings it back.
      this.log?.warn({ person: personId, reason: error.message }, 'token record unreadable')
      return null
    }
  }

  /** The record sealed for this person: a new ciphertext each time, so a write can recognise itself. */
  seal (personId: string, record: StoredRecord): string {
    assertPersonId(personId)
    const { personId: _owner, ...fields } = record
    return this.cipher.encrypt(JSON.stringify(fields), personId)
  }

  /** Seals and stores the record, and schedules its next refresh at `dueAt`. */
  async write (personId: string, record: StoredRecord, dueAt: number): Promise<void> {
    await this.store.set(recordKey(personId), this.seal(personId, record), recordTtlMs(record))
    await this.#index(personId, record, dueAt)
  }

  /**
   * Compare-and-set: stores `envelope` (sealed from `record`) only while the stored ciphertext is
   * still `expected`, so a refresh cannot bring back a record deleted meanwhile or overwrite a
   * newer sign-in. Safe to repeat after a lost answer: a write that already landed counts.
   */
  async replace (personId: string, expected: string, envelope: string, record: StoredRecord, dueAt: number): Promise<boolean> {
    const key = recordKey(personId)
    if (!await this.store.setIfEquals(key, expected, envelope, recordTtlMs(record)) && await this.store.get(key) !== envelope) return false
    await this.#index(personId, record, dueAt)
    return true
  }

  async #index (personId: string, record: StoredRecord, dueAt: number): Promise<void> {
    await Promise.all([
      this.store.schedule(REFRESH_SCHEDULE_KEY, personId, dueAt),
      this.store.schedule(EXPIRY_INDEX_KEY, personId, record.expiresAt),
      this.changes?.announce(personId),
    ])
  }

  /** Moves the next refresh (a lease while refreshing, or a retry). */
  async reschedule (personId: string, dueAt: number): Promise<void> {
    await this.store.schedule(REFRESH_SCHEDULE_KEY, personId, dueAt)
  }

  async remove (personId: string): Promise<void> {
    assertPersonId(personId)
    await this.store.delete(recordKey(personId))
    await Promise.all([this.unschedule(personId), this.changes?.announce(personId)])
  }

  /** Deletes the record only while it is still the one read (atomic); true when it did. */
  async removeIfUnchanged (personId: string, expected: string): Promise<boolean> {
    if (!await this.store.deleteIfEquals(recordKey(personId), expected)) return false
    await Promise.all([this.unschedule(personId), this.changes?.announce(personId)])
    return true
  }

  /** Takes the person off the refresh schedule and the expiry index. */
  async unschedule (personId: string): Promise<void> {
    await Promise.all([
      this.store.unschedule(REFRESH_SCHEDULE_KEY, personId),
      this.store.unschedule(EXPIRY_INDEX_KEY, personId),
    ])
  }

  /** Person ids due for a refresh at `now`, soonest first. */
  async due (now: number, limit: number): Promise<string[]> {
    return await this.store.due(REFRESH_SCHEDULE_KEY, now, limit)
  }

  /** How many people hold tokens, and the soonest access-token expiry (ms) among them. */
  async stats (): Promise<{ held: number, soonestExpiry: number | null }> {
    const { size, soonest } = await this.store.scheduleStats(EXPIRY_INDEX_KEY)
    return { held: size, soonestExpiry: soonest }
  }
}
