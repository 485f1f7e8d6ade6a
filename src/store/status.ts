/** What a {@link StoreStatus} tells its observer: each change of state once, every failed command. */
export interface StoreStatusObserver {
  down: (cause: unknown) => void
  up: (downForMs: number) => void
  error: (cause: unknown) => void
}

/**
 * Whether the store answers, as its connection events and its commands show. A frozen Redis
 * keeps its connections open, so a timed-out command marks it down as surely as a dropped one.
 */
export class StoreStatus {
  #downSince: number | undefined
  #closing = false
  readonly #observers: StoreStatusObserver[] = []

  /** When the current outage began (ms since the epoch); undefined while the store answers. */
  get downSince (): number | undefined {
    return this.#downSince
  }

  observe (observer: StoreStatusObserver): void {
    this.#observers.push(observer)
  }

  /** The connection dropped or a command failed for want of a store. */
  lost (cause: unknown): void {
    if (this.#downSince !== undefined || this.#closing) return
    this.#downSince = Date.now()
    for (const observer of this.#observers) observer.down(cause)
  }

  /** The store answered. */
  answered (): void {
    if (this.#downSince === undefined) return
    const downForMs = Date.now() - this.#downSince
    this.#downSince = undefined
    for (const observer of this.#observers) observer.up(downForMs)
  }

  failed (cause: unknown): void {
    for (const observer of this.#observers) observer.error(cause)
    this.lost(cause)
  }

  /** The gateway is closing its connections on purpose: that is not an outage. */
  close (): void {
    this.#closing = true
  }
}
