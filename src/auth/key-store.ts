import { hash, randomBytes } from 'node:crypto'
import type { Limits } from '../config/policy.js'
import { BadRequestError } from '../errors.js'
import type { PersonChanges } from '../store/cache.js'
import type { Store } from '../store/store.js'

/** Every gateway key starts with this, so a key is told apart from an assertion or a Google key. */
export const KEY_PREFIX = 'gk_'
/** `gk_` and 32 random bytes in base64url. */
export const KEY_PATTERN = /^gk_[A-Za-z0-9_-]{43}$/
/** Most live keys one person may hold. */
export const MAX_KEYS_PER_PERSON = 50
/** Longest lifetime a key may be given. */
export const MAX_KEY_LIFETIME_DAYS = 3650
/** A key is marked used at most this often, so a busy key does not write on every call. */
export const LAST_USED_RESOLUTION_MS = 60_000
const DAY_MS = 24 * 60 * 60 * 1000

/** A gateway key as stored and listed: never the secret, which exists only in the creator's hands. */
export interface GatewayKey {
  id: string
  personId: string
  name: string
  /** Milliseconds since the epoch. */
  createdAt: number
  lastUsedAt: number | null
  expiresAt: number | null
  /** The key's own limits and models, narrower than its owner's (set at creation only). */
  limits?: Limits
}

const byHashKey = (hash: string): string => `key:hash:${hash}`
const hashByIdKey = (id: string): string => `key:id:${id}`
const usedKey = (id: string): string => `key:used:${id}`
const personKeysKey = (personId: string): string => `person:${personId}:keys`

/** What a key is stored and cached under: the SHA-256 of its secret, never the secret. */
export function keyHash (secret: string): string {
  // The secret is 256 random bits: a fast hash is as good as a slow one here.
  // One-shot hash: no Hash object per call (this runs on every call made with a key).
  return hash('sha256', secret, 'base64url')
}

/**
 * Personal gateway keys: looked up by the SHA-256 of the secret, with an index per person so
 * they can be listed and revoked. Last use is kept apart from the record, so marking a key used
 * can never bring back one that was revoked meanwhile.
 */
export class KeyStore {
  /** `maxLifetimeDays`: KEY_MAX_DAYS; no key lives longer, whatever it was created with. */
  constructor (private readonly store: Store, private readonly changes?: PersonChanges, private readonly maxLifetimeDays = MAX_KEY_LIFETIME_DAYS) {}

  /**
   * Creates a key (living at most KEY_MAX_DAYS); the returned secret is the only copy there will ever be. BadRequestError when
   * the person already holds MAX_KEYS_PER_PERSON live keys, however many creates run at once.
   */
  async create (personId: string, name: string, expiresInDays?: number, limits?: Limits): Promise<{ key: GatewayKey, secret: string }> {
    const secret = KEY_PREFIX + randomBytes(32).toString('base64url')
    const hash = keyHash(secret)
    const now = Date.now()
    const key: GatewayKey = {
      id: randomBytes(12).toString('base64url'),
      personId,
      name,
      createdAt: now,
      lastUsedAt: null,
      expiresAt: now + Math.min(expiresInDays ?? this.maxLifetimeDays, this.maxLifetimeDays) * DAY_MS,
      ...(limits === undefined ? {} : { limits }),
    }
    const ttl = key.expiresAt === null ? undefined : key.expiresAt - now
    const { lastUsedAt: _unused, ...record } = key
    // Expired keys are forgotten first, so they do not count against the limit.
    await this.list(personId)
    // The records first, the index entry last: list() drops an indexed id whose record is missing.
    await this.store.set(byHashKey(hash), JSON.stringify(record), ttl)
    await this.store.set(hashByIdKey(key.id), hash, ttl)
    // The limit is taken atomically with the index entry: a count checked beforehand would let every racing create pass.
    if (!await this.store.addToSetIfBelow(personKeysKey(personId), key.id, MAX_KEYS_PER_PERSON)) {
      await this.store.delete(byHashKey(hash), hashByIdKey(key.id))
      throw new BadRequestError(`You already have ${MAX_KEYS_PER_PERSON} keys; revoke one first.`)
    }
    return { key, secret }
  }

  /** The live key a secret belongs to, marked used; null when it is unknown, revoked or expired. */
  async verify (secret: string): Promise<GatewayKey | null> {
    if (!KEY_PATTERN.test(secret)) return null
    const key = await this.#byHash(keyHash(secret))
    if (key === null) return null
    const now = Date.now()
    if (key.lastUsedAt === null || now - key.lastUsedAt >= LAST_USED_RESOLUTION_MS) {
      await this.store.set(usedKey(key.id), String(now), key.expiresAt === null ? undefined : Math.max(1, key.expiresAt - now))
    }
    return key
  }

  /** A person's live keys, oldest first; forgets the ids of keys that expired. */
  async list (personId: string): Promise<GatewayKey[]> {
    const ids = await this.store.setMembers(personKeysKey(personId))
    const keys = await Promise.all(ids.map(async (id) => await this.#byId(id)))
    await Promise.all(ids.filter((_id, index) => keys[index] === null)
      .map(async (id) => { await this.store.removeFromSet(personKeysKey(personId), id) }))
    return keys.filter((key): key is GatewayKey => key !== null && key.personId === personId)
      .sort((a, b) => a.createdAt - b.createdAt)
  }

  /** A live key by id, whoever holds it (the administrator's revoke); null when unknown. */
  async find (id: string): Promise<GatewayKey | null> {
    return await this.#byId(id)
  }

  /** Revokes one of this person's keys; false when they have no such key. */
  async revoke (personId: string, id: string): Promise<boolean> {
    const key = await this.#byId(id)
    if (key === null || key.personId !== personId) return false
    await this.#remove(personId, id)
    await this.changes?.announce(personId)
    return true
  }

  /** Revokes every key of a person (sign-out, lost refresh token). */
  async revokeAll (personId: string): Promise<void> {
    const ids = await this.store.setMembers(personKeysKey(personId))
    await Promise.all(ids.map(async (id) => { await this.#remove(personId, id) }))
    await this.store.delete(personKeysKey(personId))
    await this.changes?.announce(personId)
  }

  async #remove (personId: string, id: string): Promise<void> {
    const hash = await this.store.get(hashByIdKey(id))
    await this.store.delete(...(hash === null ? [] : [byHashKey(hash)]), hashByIdKey(id), usedKey(id))
    await this.store.removeFromSet(personKeysKey(personId), id)
  }

  async #byId (id: string): Promise<GatewayKey | null> {
    const hash = await this.store.get(hashByIdKey(id))
    return hash === null ? null : await this.#byHash(hash)
  }

  async #byHash (hash: string): Promise<GatewayKey | null> {
    const text = await this.store.get(byHashKey(hash))
    if (text === null) return null
    const key = JSON.parse(text) as Omit<GatewayKey, 'lastUsedAt'>
    // The store's TTL removes an expired key; this covers a clock or TTL that lags, and keys
    // made before KEY_MAX_DAYS (or before it was lowered), which end that long after creation.
    const endsAt = Math.min(key.expiresAt ?? Infinity, key.createdAt + this.maxLifetimeDays * DAY_MS)
    if (endsAt <= Date.now()) return null
    const lastUsed = await this.store.get(usedKey(key.id))
    return { ...key, expiresAt: endsAt, lastUsedAt: lastUsed === null ? null : Number(lastUsed) }
  }
}

/** Revokes all of a person's gateway keys: for sign-out and for a refresh token that is gone. */
export async function revokeAllKeys (store: Store, personId: string, changes?: PersonChanges): Promise<void> {
  await new KeyStore(store, changes).revokeAll(personId)
}
