import type { Transform } from 'node:stream'
import { TextDecoder } from 'node:util'
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib'

/** The token counts Gemini reports in `usageMetadata`. */
export interface TokenUsage {
  promptTokenCount: number
  candidatesTokenCount: number
  totalTokenCount: number
}

/** What a finished response reported, and for which model version. */
export interface ObservedUsage {
  usage: TokenUsage
  modelVersion?: string
}

/** A JSON answer bigger than this is passed on unread: its usage is not counted. */
export const MAX_METERED_JSON_BYTES = 8 * 1024 * 1024
/** One SSE line longer than this is skipped. */
const MAX_SSE_LINE_BYTES = 4 * 1024 * 1024

function toUsage (value: unknown): TokenUsage | undefined {
  const metadata = (value as { usageMetadata?: Record<string, unknown> } | null)?.usageMetadata
  if (metadata === undefined || metadata === null || typeof metadata !== 'object') return undefined
  const count = (name: string): number => typeof metadata[name] === 'number' ? metadata[name] : 0
  return { promptTokenCount: count('promptTokenCount'), candidatesTokenCount: count('candidatesTokenCount'), totalTokenCount: count('totalTokenCount') }
}

function observe (value: unknown): ObservedUsage | undefined {
  // `:streamGenerateContent` without alt=sse answers one JSON array of chunks.
  const last = Array.isArray(value) ? value.findLast((item) => toUsage(item) !== undefined) : value
  const usage = toUsage(last)
  if (usage === undefined) return undefined
  const modelVersion = (last as { modelVersion?: unknown }).modelVersion
  return { usage, modelVersion: typeof modelVersion === 'string' ? modelVersion : undefined }
}

function parse (text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

const USAGE_KEY = Buffer.from('"usageMetadata"')

/**
 * What a whole JSON answer reported. Gemini puts `usageMetadata` among the last top-level
 * members, so only the tail from its key on is parsed, as an object of its own; that parses
 * only when the key is a top-level one (a nested key leaves the braces unbalanced), and
 * anything else (an array, a nested key, no key) falls back to parsing the whole body.
 */
function observeJson (body: Buffer): ObservedUsage | undefined {
  const at = body.lastIndexOf(USAGE_KEY)
  if (at === -1) return undefined
  const tail = body[0] === 0x7b ? parse(`{${body.toString('utf8', at)}`) : undefined
  return observe(tail ?? parse(body.toString('utf8')))
}

function decoderFor (contentEncoding: string): Transform | null | undefined {
  switch (contentEncoding.trim().toLowerCase()) {
    case '': case 'identity': return null
    case 'gzip': case 'x-gzip': return createGunzip()
    case 'deflate': return createInflate()
    case 'br': return createBrotliDecompress()
    default: return undefined
  }
}

/**
 * Reads a copy of a response body on the side, as it passes from the upstream to the client,
 * for `usageMetadata`: from a JSON body at its end, or from the last SSE event that carried it
 * (also when the client leaves mid-stream: those tokens were spent). It is not a stream in the
 * body's path, so it never delays, alters or fails it, and costs no extra stream hop per chunk.
 * `onUsage` runs at most once.
 */
export class UsageTap {
  readonly #sse: boolean
  readonly #decoder: Transform | null | undefined
  // Only SSE bodies are decoded as they pass (a decoder costs more to make than a small JSON answer to read).
  readonly #text: TextDecoder | undefined
  #pending = ''
  #json: Buffer[] = []
  #jsonBytes = 0
  #observed: ObservedUsage | undefined
  #reported = false
  #flushing = false

  constructor (contentType: string, contentEncoding: string, private readonly onUsage: (observed: ObservedUsage) => void) {
    this.#sse = contentType.toLowerCase().startsWith('text/event-stream')
    this.#text = this.#sse ? new TextDecoder() : undefined
    this.#decoder = decoderFor(contentEncoding)
    this.#decoder?.on('data', (chunk: Buffer) => this.#read(chunk))
    this.#decoder?.on('error', () => { this.#pending = '' })
  }

  /** A chunk of the body, as it passes. */
  write (chunk: Buffer): void {
    if (this.#decoder === null) this.#read(chunk)
    else this.#decoder?.write(chunk)
  }

  /** The body ended whole. */
  end (): void {
    if (this.#flushing) return
    this.#flushing = true
    if (this.#decoder === null || this.#decoder === undefined) {
      this.#finish()
      return
    }
    // Only the side copy still decompresses: the end of the body is not held back.
    this.#decoder.once('end', () => this.#finish())
    this.#decoder.once('error', () => this.#finish())
    this.#decoder.resume()
    this.#decoder.end()
  }

  /** The body stopped, ended or not (a client that left, an upstream that broke). */
  close (): void {
    if (this.#flushing) return
    this.#decoder?.destroy()
    if (this.#sse) this.#report()
  }

  #read (chunk: Buffer): void {
    if (!this.#sse) {
      this.#jsonBytes += chunk.length
      if (this.#jsonBytes > MAX_METERED_JSON_BYTES) this.#json = []
      else this.#json.push(chunk)
      return
    }
    this.#pending += this.#text!.decode(chunk, { stream: true })
    const lines = this.#pending.split('\n')
    this.#pending = lines.pop() ?? ''
    if (this.#pending.length > MAX_SSE_LINE_BYTES) this.#pending = ''
    for (const line of lines) this.#readEvent(line)
  }

  #readEvent (line: string): void {
    if (!line.startsWith('data:') || !line.includes('"usageMetadata"')) return
    this.#observed = observe(parse(line.slice(5).trim())) ?? this.#observed
  }

  #finish (): void {
    if (this.#sse) this.#readEvent(this.#pending)
    else if (this.#jsonBytes <= MAX_METERED_JSON_BYTES) this.#observed = observeJson(this.#json.length === 1 ? this.#json[0]! : Buffer.concat(this.#json))
    this.#pending = ''
    this.#json = []
    this.#report()
  }

  #report (): void {
    if (this.#reported || this.#observed === undefined) return
    this.#reported = true
    try {
      this.onUsage(this.#observed)
    } catch {
      // Metering must never break the response it measures.
    }
  }
}
