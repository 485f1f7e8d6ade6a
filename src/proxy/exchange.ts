import type { IncomingHttpHeaders } from 'node:http'
import type { Dispatcher } from 'undici'

/** The upstream's answer once its status line and headers have arrived. */
export interface UpstreamHead {
  statusCode: number
  headers: IncomingHttpHeaders
}

/** Where an upstream body goes once the proxy has decided what to do with it. */
export interface BodySink {
  /** A chunk; answers false when the sink wants no more until it says so with `resume`. */
  data: (chunk: Buffer, resume: () => void) => boolean
  /** The body arrived whole. */
  end: () => void
  /** The body broke off (upstream failure, or the call was abandoned). */
  error: (error: Error) => void
}

/** A sink that drops everything: a 401 about to be retried, the body of a HEAD. */
const DISCARD: BodySink = { data: () => true, end: () => {}, error: () => {} }

/**
 * One call to the upstream through undici's dispatch API. Its body goes straight to a sink
 * (the client's socket) as it arrives: no response stream object, no AbortController, no
 * promise per chunk. `head` settles once, when the status and headers arrive (or with the
 * error that came first). Chunks that arrive before `pipe` is called are held, in order.
 */
export class UpstreamExchange implements Dispatcher.DispatchHandler {
  readonly head: Promise<UpstreamHead>
  #resolve!: (head: UpstreamHead) => void
  #reject!: (error: Error) => void
  #controller: Dispatcher.DispatchController | undefined
  #abandoned: Error | undefined
  #headed = false
  #sink: BodySink | undefined
  /** Chunks that came before `pipe` (made only when one does). */
  #early: Buffer[] | undefined
  #ended = false
  #failed: Error | undefined
  readonly #resume = (): void => { this.#controller?.resume() }

  constructor () {
    this.head = new Promise((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
  }

  onRequestStart (controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    if (this.#abandoned !== undefined) controller.abort(this.#abandoned)
  }

  onResponseStart (_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200 || this.#headed) return
    this.#headed = true
    this.#resolve({ statusCode, headers })
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#sink === undefined) (this.#early ??= []).push(chunk)
    else if (!this.#sink.data(chunk, this.#resume)) controller.pause()
  }

  onResponseEnd (): void {
    this.#ended = true
    this.#sink?.end()
  }

  onResponseError (_controller: Dispatcher.DispatchController, error: Error): void {
    if (!this.#headed) {
      this.#headed = true
      this.#reject(error)
      return
    }
    this.#failed = error
    this.#sink?.error(error)
  }

  /** Stops the call wherever it is (queued, waiting for headers, streaming): the client left. */
  abandon (reason: Error): void {
    if (this.#abandoned !== undefined) return
    this.#abandoned = reason
    this.#controller?.abort(reason)
  }

  /** Sends the body to `sink`, starting with what has already arrived. */
  pipe (sink: BodySink): void {
    this.#sink = sink
    const early = this.#early
    this.#early = undefined
    if (early !== undefined) {
      for (const chunk of early) {
        if (!sink.data(chunk, this.#resume)) this.#controller?.pause()
      }
    }
    if (this.#failed !== undefined) sink.error(this.#failed)
    else if (this.#ended) sink.end()
  }

  /** The whole body, for an answer the gateway reads before it is sent on (a small one). */
  async read (): Promise<Buffer> {
    return await new Promise((resolve, reject) => {
      const chunks: Buffer[] = []
      this.pipe({ data: (chunk) => chunks.push(chunk) > 0, end: () => { resolve(Buffer.concat(chunks)) }, error: reject })
    })
  }

  /** Drops the body; the connection is reused once it has been read. */
  discard (): void {
    this.pipe(DISCARD)
  }
}
