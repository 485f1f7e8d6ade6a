import { randomBytes } from 'node:crypto'
import type { Store } from '../store/store.js'

const lockKey = (personId: string): string => `person:${personId}:token-lock`

/** A per-person lock across replicas: SET NX PX with a random owner token, renewed and released only by that owner. */
export class PersonLocks {
  constructor (private readonly store: Store, private readonly ttlMs: number) {}

  /** Takes the lock if it is free: the owner token, or null when someone holds it. */
  async acquire (personId: string): Promise<string | null> {
    const owner = randomBytes(16).toString('base64url')
    return await this.store.setIfAbsent(lockKey(personId), owner, this.ttlMs) ? owner : null
  }

  /** Renews the lock every third of its TTL until the returned function is called. */
  heartbeat (personId: string, owner: string): () => void {
    const timer = setInterval(() => {
      // A failed renewal is not fatal: the owner keeps working; at worst the lock lapses.
      this.store.expireIfEquals(lockKey(personId), owner, this.ttlMs).catch(() => {})
    }, this.ttlMs / 3)
    timer.unref()
    return () => { clearInterval(timer) }
  }

  /** Frees the lock if `owner` still holds it (never a lock taken over after it lapsed). */
  async release (personId: string, owner: string): Promise<void> {
    await this.store.deleteIfEquals(lockKey(personId), owner)
  }

  /** Whether anyone holds the lock now. */
  async held (personId: string): Promise<boolean> {
    return await this.store.get(lockKey(personId)) !== null
  }
}
