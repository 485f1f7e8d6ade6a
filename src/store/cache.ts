import type { Store } from './store.js'

/** The channel on which a replica says that what is stored about a person changed (message: person id). */
export const PERSON_CHANGED_CHANNEL = 'person-changed'
/**
 * Longest an in-process cache entry is served without asking the store again: the safety net
 * for a change announcement that never arrived. Announcements normally arrive within milliseconds.
 */
export const DEFAULT_CACHE_TTL_MS = 5_000
/**
 * While the store is unreachable, how long cached entries are still served (STORE_OUTAGE_GRACE_SECONDS):
 * a short blip costs no failed call, but revocations made meanwhile cannot arrive.
 */
export const DEFAULT_OUTAGE_GRACE_MS = 10_000
/** Most entries one in-process cache holds; the oldest go first. */
export const DEFAULT_CACHE_MAX_ENTRIES = 10_000

/** Called with the person whose stored state changed, or null when any may have (forget everything). */
export type ChangeListener = (personId: string | null) => void

/** What a cache may serve now: entries within their TTL, entries kept through an outage, or nothing. */
export type Serving = 'fresh' | 'outage' | 'none'

/**
 * Change announcements about people (sign-out, revoked key, refreshed or deleted tokens),
 * shared by every replica over the store's pub/sub. An announcement reaches this process's
 * caches before `announce` returns, and the other replicas' as soon as the store delivers it;
 * if the store reports a gap in delivery, every listener forgets everything.
 */
export class PersonChanges {
  readonly #listeners: ChangeListener[] = []
  readonly #outageGraceMs: number
  #subscribed: Promise<void> | undefined
  #live = false
  /** Since when announcements cannot be heard (the pub/sub connection dropped). */
  #deafSince: number | undefined

  constructor (private readonly store: Store, options: { outageGraceMs?: number } = {}) {
    this.#outageGraceMs = options.outageGraceMs ?? DEFAULT_OUTAGE_GRACE_MS
    // Announcements made during the outage may be lost: once the store answers again, forget all.
    store.status?.observe({ down: () => {}, up: () => { this.#notify(null) }, error: () => {} })
  }

  /** True while the replica hears the others and the store answers: only then may caches fill. */
  get live (): boolean {
    return this.#live && this.#deafSince === undefined && this.store.status?.downSince === undefined
  }

  /** What caches may serve now; an outage older than the grace period ends all serving. */
  serving (now = Date.now()): Serving {
    if (!this.#live) return 'none'
    const down = Math.min(this.#deafSince ?? Infinity, this.store.status?.downSince ?? Infinity)
    if (down === Infinity) return 'fresh'
    return now - down <= this.#outageGraceMs ? 'outage' : 'none'
  }

  /** Tells this process's caches now, then the other replicas. */
  async announce (personId: string): Promise<void> {
    this.#notify(personId)
    await this.store.publish(PERSON_CHANGED_CHANNEL, personId)
  }

  listen (listener: ChangeListener): void {
    this.#listeners.push(listener)
  }

  /** Subscribes to the other replicas' announcements (once); waits while the store is unreachable. */
  async start (): Promise<void> {
    this.#subscribed ??= this.store.subscribe(PERSON_CHANGED_CHANNEL, (personId) => this.#notify(personId), (phase) => this.#gap(phase))
      .then(() => { this.#live = true })
    await this.#subscribed
  }

  #gap (phase: 'lost' | 'back'): void {
    if (phase === 'lost') {
      // Keep the caches: they serve through a short outage (see `serving`).
      this.#deafSince ??= Date.now()
      return
    }
    this.#deafSince = undefined
    this.#notify(null)
  }

  #notify (personId: string | null): void {
    for (const listener of this.#listeners) listener(personId)
  }
}

interface Entry<V> {
  value: V
  personId: string
  /** End of the TTL (or `notAfter`, if sooner): served until then while the store answers. */
  expiresAt: number
  /** When the value itself stops being true (a token's or key's expiry): never served past it. */
  notAfter: number
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

  /**
   * The live entry; undefined when absent, expired, or while announcements cannot be heard.
   * While the store is unreachable (for at most the outage grace) entries past their TTL are
   * served too: there is nothing fresher to ask for.
   */
  get (key: string, now = Date.now()): V | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    const serving = this.changes.serving()
    if (serving === 'fresh' && entry.expiresAt > now) return entry.value
    if (serving === 'outage' && entry.notAfter > now) return entry.value
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
    this.#entries.set(key, { value, personId, expiresAt: Math.min(Date.now() + this.#ttlMs, notAfter), notAfter })
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
