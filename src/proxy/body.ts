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

/**
 * Reads a body of at most `keepLimit` bytes into memory; a larger one (by Content-Length, or
 * once more than that has arrived) is streamed instead, starting with what was already read.
 */
export async function readRequestBody (request: IncomingMessage, keepLimit: number): Promise<RequestBody> {
  if (!hasBody(request)) return { kind: 'none' }
  const declared = Number(request.headers['content-length'])
  if (Number.isFinite(declared) && declared > keepLimit) return { kind: 'streamed', stream: request }
  const chunks: Buffer[] = []
  let size = 0
  const iterator = request[Symbol.asyncIterator]() as AsyncIterator<Buffer>
  for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) {
    chunks.push(next.value)
    size += next.value.length
    if (size > keepLimit) return { kind: 'streamed', stream: Readable.from(replay(chunks, iterator), { objectMode: false }) }
  }
  return { kind: 'kept', bytes: Buffer.concat(chunks) }
}

/** The body to hand to undici for one attempt. */
export function bodyForUpstream (body: RequestBody): Buffer | Readable | null {
  if (body.kind === 'none') return null
  return body.kind === 'kept' ? body.bytes : body.stream
}
