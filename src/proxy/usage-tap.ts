import type { Transform } from 'node:stream'
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib'
import { UsageScanner, type KeptMembers } from './usage-scan.js'

/** The token counts Gemini reports in `usageMetadata` (0 for a count it left out). */
export interface TokenUsage {
  promptTokenCount: number
  /** Of the prompt, how much was read from a context cache (billed at the cached rate). */
  cachedContentTokenCount: number
  candidatesTokenCount: number
  /** Thinking tokens (billed as output, not part of candidates). */
  thoughtsTokenCount: number
  /** Prompt tokens of tool results (billed as input). */
  toolUsePromptTokenCount: number
  totalTokenCount: number
  /** Google's per-modality lists, as reported (audio is billed at its own price). */
  promptTokensDetails?: readonly ModalityTokenCount[]
  cacheTokensDetails?: readonly ModalityTokenCount[]
  toolUsePromptTokensDetails?: readonly ModalityTokenCount[]
}

/** One entry of Google's `…TokensDetails`: `{ modality: 'AUDIO', tokenCount: 320 }`. */
export interface ModalityTokenCount { modality?: unknown, tokenCount?: unknown }

/** The audio tokens in one of Google's `…TokensDetails` lists (0 when it names none). */
export function audioTokens (details: readonly ModalityTokenCount[] | undefined): number {
  let tokens = 0
  if (details === undefined) return tokens
  for (const detail of details) {
    if (detail?.modality === 'AUDIO' && typeof detail.tokenCount === 'number' && Number.isFinite(detail.tokenCount)) tokens += Math.max(0, detail.tokenCount)
  }
  return tokens
}

const DETAILS = ['promptTokensDetails', 'cacheTokensDetails', 'toolUsePromptTokensDetails'] as const

/** Copies Google's per-modality token lists from a parsed `usageMetadata` into `usage`. */
export function copyDetails (metadata: Record<string, unknown>, usage: TokenUsage): void {
  for (const name of DETAILS) {
    const details = metadata[name]
    if (Array.isArray(details)) usage[name] = details as ModalityTokenCount[]
  }
}

/** What a finished response reported, for which model version, and the resource it names (a context cache made). */
export interface ObservedUsage {
  usage: TokenUsage
  modelVersion?: string
  name?: string
}

const COUNTS = ['promptTokenCount', 'cachedContentTokenCount', 'candidatesTokenCount', 'thoughtsTokenCount', 'toolUsePromptTokenCount', 'totalTokenCount'] as const

function parse (text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

/** The usage one top-level object reported, from its kept members; undefined when it carried none. */
function observe (members: KeptMembers): ObservedUsage | undefined {
  if (members.usageMetadata === undefined) return undefined
  const metadata = parse(members.usageMetadata)
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) return undefined
  const usage = {} as TokenUsage
  for (const name of COUNTS) {
    const count = (metadata as Record<string, unknown>)[name]
    usage[name] = typeof count === 'number' && Number.isFinite(count) ? count : 0
  }
  copyDetails(metadata as Record<string, unknown>, usage)
  const modelVersion = members.modelVersion === undefined ? undefined : parse(members.modelVersion)
  const name = members.name === undefined ? undefined : parse(members.name)
  return { usage, modelVersion: typeof modelVersion === 'string' ? modelVersion : undefined, ...(typeof name === 'string' ? { name } : {}) }
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

const LF = 0x0a
const CR = 0x0d
const DATA_FIELD = Buffer.from('data:')

/**
 * Reads a copy of a response body on the side, as it passes from the upstream to the client,
 * for `usageMetadata`: from a JSON body (an object, or an array of chunks whose last one with
 * usage counts), or from the last SSE event that carried it; also when the body stops early
 * (a client that left mid-stream: those tokens were spent). Each chunk is scanned once as it
 * passes (see UsageScanner): time per chunk is proportional to the chunk, and memory is bounded
 * whatever the answer's size. It is not a stream in the body's path, so it never delays,
 * alters or fails it. `onUsage` runs at most once.
 */
export class UsageTap {
  readonly #sse: boolean
  readonly #decoder: Transform | null | undefined
  readonly #scanner = new UsageScanner((members) => { this.#observed = observe(members) ?? this.#observed })
  // SSE framing: where in the current line the bytes are, and how much of `data:` a line split across chunks has matched.
  #line: 'start' | 'data' | 'other' = 'start'
  #matched = 0
  #afterCR = false
  #observed: ObservedUsage | undefined
  #reported = false
  #flushing = false

  constructor (contentType: string, contentEncoding: string, private readonly onUsage: (observed: ObservedUsage) => void) {
    this.#sse = contentType.toLowerCase().startsWith('text/event-stream')
    this.#decoder = decoderFor(contentEncoding)
    this.#decoder?.on('data', (chunk: Buffer) => this.#read(chunk))
    this.#decoder?.on('error', () => { this.#scanner.reset() })
  }

  /** Bytes the meter holds right now, besides a decompressor's window: bounded whatever the answer's size. */
  get retainedBytes (): number {
    return this.#scanner.retainedBytes
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
      this.#report()
      return
    }
    // Only the side copy still decompresses: the end of the body is not held back.
    this.#decoder.once('end', () => this.#report())
    this.#decoder.once('error', () => this.#report())
    this.#decoder.resume()
    this.#decoder.end()
  }

  /** The body stopped, ended or not (a client that left, an upstream that broke). */
  close (): void {
    if (this.#flushing) return
    this.#decoder?.destroy()
    this.#report()
  }

  #read (chunk: Buffer): void {
    if (this.#sse) this.#readEvents(chunk)
    else this.#scanner.write(chunk)
  }

  /** SSE: the JSON of `data:` lines goes to the scanner, one document per event; other lines are skipped unread. */
  #readEvents (chunk: Buffer): void {
    let index = 0
    // The next CR and LF at or after `index`, each searched for again only once passed: linear in the chunk.
    let lf = -2
    let cr = -2
    while (index < chunk.length) {
      if (this.#afterCR) {
        this.#afterCR = false
        if (chunk[index] === LF) index++
        continue
      }
      if (this.#line === 'start') {
        index = this.#readLineStart(chunk, index)
        continue
      }
      if (lf !== -1 && lf < index) lf = chunk.indexOf(LF, index)
      if (cr !== -1 && cr < index) cr = chunk.indexOf(CR, index)
      const end = Math.min(lf === -1 ? chunk.length : lf, cr === -1 ? chunk.length : cr)
      if (this.#line === 'data') this.#scanner.write(chunk, index, end)
      if (end === chunk.length) return
      this.#endLine(chunk[end] === CR)
      index = end + 1
    }
  }

  /**
   * At the start of a line: a blank line ends the event; `data:` starts its JSON; anything else
   * is skipped. Compared byte by byte in place: a stream's every line costs no allocation.
   */
  #readLineStart (chunk: Buffer, index: number): number {
    const byte = chunk[index]!
    if (this.#matched === 0 && (byte === LF || byte === CR)) {
      this.#scanner.reset()
      this.#afterCR = byte === CR
      return index + 1
    }
    let matched = this.#matched
    for (; matched < DATA_FIELD.length && index < chunk.length; matched++, index++) {
      if (chunk[index] !== DATA_FIELD[matched]) {
        this.#matched = 0
        this.#line = 'other'
        return index
      }
    }
    if (matched < DATA_FIELD.length) {
      this.#matched = matched
      return index
    }
    this.#matched = 0
    this.#line = 'data'
    return index
  }

  #endLine (cr: boolean): void {
    this.#line = 'start'
    this.#afterCR = cr
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
