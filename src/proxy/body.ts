import type { IncomingMessage } from 'node:http'
import { Readable } from 'node:stream'

/**
 * A request body as the proxy forwards it: none, kept in memory (small enough to send again
 * after an upstream 401), or streamed through as it arrives (large, sent once).
 */
export type RequestBody =
  | { kind: 'none' }
  | { kind: 'kept', bytes: Buffer }
  | { kind: 'streamed', stream: Readable }

function hasBody (request: IncomingMessage): boolean {
  if (request.headers['transfer-encoding'] !== undefined) return true
  const length = Number(request.headers['content-length'] ?? 0)
  return Number.isFinite(length) && length > 0
}

async function * replay (kept: Buffer[], rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  yield * kept
  for (let next = await rest.next(); next.done !== true; next = await rest.next()) yield next.value
}

/** Reads up to `keepLimit` bytes with plain events (cheaper than an async iterator per request); stopping once more than that arrived. */
async function readSmall (request: Readable, keepLimit: number): Promise<{ chunks: Buffer[], overflow: boolean }> {
  return await new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      size += chunk.length
      if (size <= keepLimit) return
      request.pause()
      cleanup()
      resolve({ chunks, overflow: true })
    }
    const onEnd = (): void => { cleanup(); resolve({ chunks, overflow: false }) }
    const onError = (error: Error): void => { cleanup(); reject(error) }
    const onClose = (): void => { cleanup(); reject(Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })) }
    const cleanup = (): void => {
      request.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose)
    }
    // `on`, not `once`: cleanup removes all four at the first of them (`once` would wrap each).
    request.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose)
  })
}

/**
 * Reads a body of at most `keepLimit` bytes into memory; a larger one (by Content-Length, or
 * once more than that has arrived) is streamed instead, starting with what was already read.
 */
export async function readRequestBody (request: IncomingMessage, keepLimit: number): Promise<RequestBody> {
  if (!hasBody(request)) return { kind: 'none' }
  const declared = Number(request.headers['content-length'])
  if (Number.isFinite(declared) && declared > keepLimit) return { kind: 'streamed', stream: request }
  const { chunks, overflow } = await readSmall(request, keepLimit)
  if (overflow) {
    const rest = request[Symbol.asyncIterator]() as AsyncIterator<Buffer>
    return { kind: 'streamed', stream: Readable.from(replay(chunks, rest), { objectMode: false }) }
  }
  return { kind: 'kept', bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) }
}

/**
 * A streamed body read whole into memory, up to `limit` bytes (for a policy that must see its
 * size before it is forwarded); undefined when it is longer, and the rest is then discarded as it
 * arrives, so that the client, still sending, gets the answer refusing it.
 */
export async function readStreamed (body: { kind: 'streamed', stream: Readable }, limit: number): Promise<Buffer | undefined> {
  const { chunks, overflow } = await readSmall(body.stream, limit)
  if (!overflow) return Buffer.concat(chunks)
  body.stream.resume()
  return undefined
}

/** The body to hand to undici for one attempt. */
export function bodyForUpstream (body: RequestBody): Buffer | Readable | null {
  if (body.kind === 'none') return null
  return body.kind === 'kept' ? body.bytes : body.stream
}
