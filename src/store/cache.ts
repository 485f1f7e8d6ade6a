import type { Store } from './store.js'

/** The channel on which a replica says that what is stored about a person changed (message: person id). */
export const PERSON_CHANGED_CHANNEL = 'person-changed'
/**
 * Longest an in-process cache entry is served without asking the store again: the safety net
 * for a change announcement that never arrived. Announcements normally arrive within milliseconds.
 */
export const DEFAULT_CACHE_TTL_MS = 5_000
/** Most entries one in-process cache holds; the oldest go first. */
export const DEFAULT_CACHE_MAX_ENTRIES = 10_000

/** Called with the person whose stored state changed, or null when any may have (forget everything). */
export type ChangeListener = (personId: string | null) => void

/**
 * Change announcements about people (sign-out, revoked key, refreshed or deleted tokens),
 * shared by every replica over the store's pub/sub. An announcement reaches this process's
 * caches before `announce` returns, and the other replicas' as soon as the store delivers it;
 * if the store reports a gap in delivery, every listener forgets everything.
 */
export class PersonChanges {
  readonly #listeners: ChangeListener[] = []
  #subscribed: Promise<void> | undefined
  #live = false

  constructor (private readonly store: Store) {}

  /** True once the replica hears the others: until then caches must not serve. */
  get live (): boolean {
    return this.#live
  }

  /** Tells this process's caches now, then the other replicas. */
  async announce (personId: string): Promise<void> {
    this.#notify(personId)
    await this.store.publish(PERSON_CHANGED_CHANNEL, personId)
  }

  listen (listener: ChangeListener): void {
    this.#listeners.push(listener)
  }

  /** Subscribes to the other replicas' announcements (once). */
  async start (): Promise<void> {
    this.#subscribed ??= this.store.subscribe(PERSON_CHANGED_CHANNEL, (personId) => this.#notify(personId), () => this.#notify(null))
      .then(() => { this.#live = true })
    await this.#subscribed
  }

  #notify (personId: string | null): void {
    for (const listener of this.#listeners) listener(personId)
  }
}

interface Entry<V> {
  value: V
  personId: string
  expiresAt: number
}

/** Options of a {@link PersonCache}. */
export interface PersonCacheOptions {
  ttlMs?: number
  maxEntries?: number
}

/**
 * A small in-process cache of things that belong to a person (a credential's identity, a
 * person's access token), dropped per person when a change is announced. A read that started
 * before an announcement cannot store what it read afterwards: `ticket()` before reading the
 * store, `set(…, ticket)` after, and the set is ignored if anything was forgotten in between.
 */
export class PersonCache<V> {
  readonly #entries = new Map<string, Entry<V>>()
  readonly #byPerson = new Map<string, Set<string>>()
  readonly #ttlMs: number
  readonly #maxEntries: number
  #generation = 0

  constructor (private readonly changes: PersonChanges, options: PersonCacheOptions = {}) {
    this.#ttlMs = options.ttlMs ?? DEFAULT_CACHE_TTL_MS
    this.#maxEntries = options.maxEntries ?? DEFAULT_CACHE_MAX_ENTRIES
    changes.listen((personId) => { this.forget(personId) })
  }

  get size (): number {
    return this.#entries.size
  }

  /** The live entry; undefined when absent, expired, or while announcements cannot be heard. */
  get (key: string, now = Date.now()): V | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt > now && this.changes.live) return entry.value
    this.#delete(key, entry.personId)
    return undefined
  }

  /** Taken before reading the store for a later {@link set}. */
  ticket (): number {
    return this.#generation
  }

  /** Keeps `value` for the TTL (or until `notAfter`, if sooner) unless something was forgotten since `ticket`. */
  set (key: string, personId: string, value: V, ticket: number, notAfter = Infinity): void {
    if (ticket !== this.#generation || !this.changes.live) return
    const existing = this.#entries.get(key)
    if (existing !== undefined) this.#delete(key, existing.personId)
    if (this.#entries.size >= this.#maxEntries) {
      const [oldest, entry] = this.#entries.entries().next().value as [string, Entry<V>]
      this.#delete(oldest, entry.personId)
    }
    this.#entries.set(key, { value, personId, expiresAt: Math.min(Date.now() + this.#ttlMs, notAfter) })
    let keys = this.#byPerson.get(personId)
    if (keys === undefined) this.#byPerson.set(personId, keys = new Set())
    keys.add(key)
  }

  /** Drops a person's entries, or every entry for null. */
  forget (personId: string | null): void {
    this.#generation++
    if (personId === null) {
      this.#entries.clear()
      this.#byPerson.clear()
      return
    }
    for (const key of this.#byPerson.get(personId) ?? []) this.#entries.delete(key)
    this.#byPerson.delete(personId)
  }

  #delete (key: string, personId: string): void {
    this.#entries.delete(key)
    const keys = this.#byPerson.get(personId)
    keys?.delete(key)
    if (keys?.size === 0) this.#byPerson.delete(personId)
  }
}
