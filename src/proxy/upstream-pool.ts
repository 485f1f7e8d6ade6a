import { Dispatcher, errors, type Client } from 'undici'

/**
 * Idle upstream connections kept at most, as Node's own http.Agent keeps 256 free sockets:
 * a burst of 1,000 streams leaves this many behind when it ends, not 1,000.
 */
export const DEFAULT_IDLE_CONNECTIONS = 256

/** Makes one connection (an undici Client) to the upstream. */
export type ClientFactory = () => Client

/**
 * A pool of upstream connections that does not keep what a burst grew. undici's Pool keeps
 * every Client it ever made (disconnected ones included: it only drops one that failed to
 * connect) and looks for a free one by a scan from the start of that list, so a burst of
 * 1,000 streams leaves 1,000 Clients behind for the life of the process. Here every event
 * costs O(1) and nothing sweeps:
 * - a call goes to the connection freed last (a stack), so a few hot connections carry the
 *   steady load and the others stay idle until the keep-alive closes them;
 * - a connection that frees up while DEFAULT_IDLE_CONNECTIONS are already idle is closed;
 * - a connection whose socket closed with nothing left to send is dropped.
 * There is no cap on connections in use (see DEFAULT_CONNECTIONS) and so no queue.
 */
export class UpstreamPool extends Dispatcher {
  readonly #factory: ClientFactory
  readonly #maxIdle: number
  /** Every client held, in use or not. */
  readonly #clients = new Set<Client>()
  /** The clients that can take a call now (an h2 one may carry others already). */
  readonly #ready = new Set<Client>()
  /**
   * #ready in the order the clients were freed, last on top. An entry whose client left
   * #ready since stays until it reaches the top or the stack is compacted.
   */
  #stack: Client[] = []
  #closed = false

  constructor (factory: ClientFactory, maxIdle = DEFAULT_IDLE_CONNECTIONS) {
    super()
    this.#factory = factory
    this.#maxIdle = maxIdle
  }

  /** How many connections (undici Clients) the pool holds, in use or idle, connected or not. */
  get clients (): number {
    return this.#clients.size
  }

  /** How many of them can take a call now. */
  get ready (): number {
    return this.#ready.size
  }

  override dispatch (options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.#closed) throw new errors.ClientClosedError()
    const client = this.#top() ?? this.#grow()
    if (!client.dispatch(options, handler) && !this.#takesMore(client)) this.#unready(client)
    return true
  }

  // undici calls a connection busy while a call waits for it to be made. One that will carry
  // HTTP/2 streams takes a call per stream meanwhile: else a burst opens a connection per call
  // until the first new one is up.
  #takesMore (client: Client): boolean {
    return client.pipelining > 1 && client.stats.size < client.pipelining
  }

  #top (): Client | undefined {
    while (this.#stack.length > 0) {
      const client = this.#stack.at(-1)!
      if (this.#ready.has(client)) return client
      this.#stack.pop()
    }
    return undefined
  }

  #grow (): Client {
    const client = this.#factory()
    this.#clients.add(client)
    client.on('drain', () => { this.#freed(client) })
    client.on('disconnect', () => { this.#dropIfUnused(client) })
    client.on('connectionError', () => { this.#dropIfUnused(client) })
    this.#makeReady(client)
    return client
  }

  #makeReady (client: Client): void {
    this.#ready.add(client)
    this.#stack.push(client)
    // Entries of clients that left #ready pile up below a hot top: compact now and then, amortised O(1).
    if (this.#stack.length > 2 * this.#ready.size + 64) this.#stack = this.#stack.filter((held) => this.#ready.has(held))
  }

  #unready (client: Client): void {
    this.#ready.delete(client)
    if (this.#stack.at(-1) === client) this.#stack.pop()
  }

  #freed (client: Client): void {
    if (!this.#clients.has(client) || this.#ready.has(client)) return
    if (this.#ready.size >= this.#maxIdle && client.stats.size === 0) {
      this.#drop(client)
      return
    }
    this.#makeReady(client)
  }

  // A client with calls still queued reconnects for them; one without is of no further use.
  #dropIfUnused (client: Client): void {
    if (this.#clients.has(client) && client.stats.size === 0) this.#drop(client)
  }

  #drop (client: Client): void {
    this.#clients.delete(client)
    this.#unready(client)
    client.close().catch(() => {})
  }

  override close (): Promise<void>
  override close (callback: () => void): void
  override close (callback?: () => void): Promise<void> | void {
    this.#closed = true
    const closed = Promise.all([...this.#clients].map(async (client) => { await client.close() })).then(() => {})
    if (callback === undefined) return closed
    void closed.then(callback, callback)
  }

  override destroy (): Promise<void>
  override destroy (error: Error | null): Promise<void>
  override destroy (callback: () => void): void
  override destroy (error: Error | null, callback: () => void): void
  override destroy (first?: Error | null | (() => void), second?: () => void): Promise<void> | void {
    const error = typeof first === 'function' ? null : first ?? null
    const callback = typeof first === 'function' ? first : second
    this.#closed = true
    const destroyed = Promise.all([...this.#clients].map(async (client) => { await client.destroy(error) })).then(() => {})
    if (callback === undefined) return destroyed
    void destroyed.then(callback, callback)
  }
}
