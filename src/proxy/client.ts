import type { ServerResponse } from 'node:http'
import { ClientGoneError } from '../errors.js'
import type { UpstreamExchange } from './exchange.js'

const CLIENT_LEFT = new Error('the client closed the connection')

/**
 * Whether the client is still there, from the moment the handler starts: a client that hangs
 * up while the gateway identifies it, reads its body or gets its token must not cause an
 * upstream call at all, and one that leaves later stops the call it caused wherever it is
 * (queued, generating, streaming). `check` is called after every await before forwarding.
 */
export class ClientWatch {
  #gone: boolean
  #exchange: UpstreamExchange | undefined

  constructor (private readonly response: ServerResponse) {
    this.#gone = response.destroyed || response.socket?.destroyed === true
    // A response closes once: `on` (not `once`, which wraps the listener each call).
    if (!this.#gone) response.on('close', this.#onClose)
  }

  readonly #onClose = (): void => {
    if (this.response.writableFinished) return
    this.#gone = true
    this.#exchange?.abandon(CLIENT_LEFT)
  }

  /** True once the client closed before its answer was complete. */
  get gone (): boolean {
    return this.#gone
  }

  /** Throws ClientGoneError (499) when the client has left: called after each await, before anything goes upstream. */
  check (): void {
    if (this.#gone) throw new ClientGoneError()
  }

  /** The upstream call now under way for this client: abandoned if the client leaves. */
  follow (exchange: UpstreamExchange): void {
    this.#exchange = exchange
    if (this.#gone) exchange.abandon(CLIENT_LEFT)
  }
}

/**
 * Writes an upstream chunk to the client: true when more may follow at once, false when the
 * client's socket is full (`resume` is then called once it drains). A client that has left takes
 * every chunk unsent: a call read to its end after its client left (Google bills it whole) goes on
 * for its usage, never paused waiting for a drain that cannot come.
 */
export function writeToClient (response: ServerResponse, chunk: Buffer, resume: () => void): boolean {
  if (response.destroyed || response.write(chunk)) return true
  const go = (): void => {
    response.off('drain', go)
    response.off('close', go)
    resume()
  }
  response.on('drain', go)
  response.on('close', go)
  return false
}
