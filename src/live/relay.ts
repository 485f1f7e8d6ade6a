import WebSocket from 'ws'

/** Above this many bytes waiting to be written to one side, the other side is no longer read. */
export const RELAY_HIGH_WATER_BYTES = 1024 * 1024
/** Reading resumes once the waiting bytes fall below this. */
export const RELAY_LOW_WATER_BYTES = 256 * 1024
/** A WebSocket close reason is at most 123 bytes. */
const MAX_REASON_BYTES = 123

/** A close code one may send: 1005, 1006 and 1015 only ever describe a close, never go on the wire. */
export function sendableCode (code: number): number {
  if (code === 1005) return 1000
  if (code === 1006 || code === 1015 || code < 1000 || (code >= 1016 && code < 3000) || code > 4999 || code === 1004) return 1011
  return code
}

/** Cuts a close reason to what a close frame carries, on a character boundary. */
export function closeReason (reason: string | Buffer): string {
  let text = reason.toString()
  while (Buffer.byteLength(text) > MAX_REASON_BYTES) text = text.slice(0, -1)
  return text
}

/** Closes a socket whatever its state: a handshake still under way is abandoned. */
export function closeSocket (socket: WebSocket, code: number, reason: string | Buffer): void {
  if (socket.readyState === WebSocket.CONNECTING) socket.terminate()
  else if (socket.readyState === WebSocket.OPEN) socket.close(sendableCode(code), closeReason(reason))
}

/** What a relay lets its owner see or change, frame by frame. */
export interface RelayHooks {
  /**
   * The client's first message (the Live `setup`): what to send upstream instead, or a close
   * reason (code 1007/1008) when the session may not start.
   */
  setup: (data: Buffer) => { data: Buffer } | { code: number, reason: string }
  /** Every message from the upstream, after it was handed to the client: true when it reported a turn's usage (the turn is over). */
  upstreamMessage: (data: Buffer) => boolean
  /**
   * The client left while a turn it sent was not over: how long (ms) to keep the upstream open for
   * that turn's usage, or 0 to close it at once.
   */
  lingerMs: () => number
  /** Both sides are closed. */
  closed: () => void
}

/** Sends `data` to `to`, reading no more from `from` while `to` has too much waiting. */
function forward (from: WebSocket, to: WebSocket, data: Buffer, isBinary: boolean): void {
  if (to.readyState !== WebSocket.OPEN) return
  to.send(data, { binary: isBinary }, () => {
    if (from.isPaused && to.bufferedAmount < RELAY_LOW_WATER_BYTES) from.resume()
  })
  if (to.bufferedAmount > RELAY_HIGH_WATER_BYTES) from.pause()
}

/**
 * Passes WebSocket messages between a client and the upstream unchanged (text stays text,
 * binary stays binary), with backpressure both ways, and relays each side's close code and
 * reason to the other. The client is not read until the upstream is open; its first message
 * goes through `hooks.setup`. A client that leaves mid-turn may leave the upstream open until
 * that turn's usage arrives (`hooks.lingerMs`): Google bills a turn it has whether or not the
 * client stays for the answer.
 */
export class LiveRelay {
  #setupDone = false
  #closedSides = 0
  #ended = false
  /** A client message went upstream since the last turn's usage came back. */
  #turnOpen = false
  /** Set while the upstream is kept open after the client left: closes it, with the client's code and reason. */
  #lingering: (() => void) | undefined

  constructor (private readonly client: WebSocket, private readonly upstream: WebSocket, private readonly hooks: RelayHooks) {
    client.pause()
    upstream.once('open', () => { client.resume() })
    client.on('message', (data: Buffer, isBinary) => { this.#fromClient(data, isBinary) })
    upstream.on('message', (data: Buffer, isBinary) => {
      forward(upstream, client, data, isBinary)
      if (!hooks.upstreamMessage(data)) return
      this.#turnOpen = false
      this.#lingering?.()
    })
    client.once('close', (code, reason) => {
      this.#sideClosed()
      const linger = this.#turnOpen && upstream.readyState === WebSocket.OPEN ? hooks.lingerMs() : 0
      if (linger <= 0) {
        closeSocket(upstream, code, reason)
        return
      }
      const timer = setTimeout(() => { this.#lingering?.() }, linger).unref()
      this.#lingering = () => {
        clearTimeout(timer)
        this.#lingering = undefined
        closeSocket(upstream, code, reason)
      }
    })
    upstream.once('close', (code, reason) => {
      this.#lingering?.()
      closeSocket(client, code, reason)
      this.#sideClosed()
    })
    client.on('error', () => { client.terminate() })
  }

  /** Ends the session: the client is told why, the upstream that the client went away. */
  end (code: number, reason: string): void {
    if (this.#ended) return
    this.#ended = true
    this.#turnOpen = false
    closeSocket(this.client, code, reason)
    closeSocket(this.upstream, 1000, 'the client session ended')
  }

  #fromClient (data: Buffer, isBinary: boolean): void {
    if (this.#setupDone) {
      this.#turnOpen = true
      forward(this.client, this.upstream, data, isBinary)
      return
    }
    this.#setupDone = true
    const setup = this.hooks.setup(data)
    if ('code' in setup) this.end(setup.code, setup.reason)
    else forward(this.client, this.upstream, setup.data, isBinary)
  }

  #sideClosed (): void {
    if (++this.#closedSides === 2) this.hooks.closed()
  }
}
