import { TextDecoder } from 'node:util'
import type { TokenUsage } from '../proxy/usage-tap.js'

/** A JSON answer bigger than this passes unread: its usage is not counted. */
export const MAX_METERED_OPENAI_JSON_BYTES = 8 * 1024 * 1024
/** One SSE event longer than this passes unread. */
const MAX_EVENT_BYTES = 4 * 1024 * 1024

/** Gemini's token counts from an OpenAI-shaped `usage` (`prompt_tokens`, `completion_tokens`, `total_tokens`). */
export function openAiUsage (value: unknown): TokenUsage | undefined {
  const usage = (value as { usage?: Record<string, unknown> | null } | null)?.usage
  if (usage === undefined || usage === null || typeof usage !== 'object') return undefined
  const count = (name: string): number => typeof usage[name] === 'number' ? usage[name] : 0
  const details = usage.prompt_tokens_details as { cached_tokens?: unknown, audio_tokens?: unknown } | undefined
  const cached = details?.cached_tokens
  const audio = details?.audio_tokens
  // completion_tokens already holds any reasoning tokens: all of it is billed as output.
  return {
    promptTokenCount: count('prompt_tokens'),
    cachedContentTokenCount: typeof cached === 'number' ? cached : 0,
    candidatesTokenCount: count('completion_tokens'),
    thoughtsTokenCount: 0,
    toolUsePromptTokenCount: 0,
    totalTokenCount: count('total_tokens'),
    // The prompt's audio, billed at its own price, in Gemini's terms.
    ...(typeof audio === 'number' && audio > 0 ? { promptTokensDetails: [{ modality: 'AUDIO', tokenCount: audio }] } : {}),
  }
}

function parse (text: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(text) as unknown
    return value !== null && typeof value === 'object' ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

/** What a finished answer reported: its usage and model. */
export interface OpenAiObserved {
  usage: TokenUsage
  model?: string
}

/**
 * Reads an OpenAI-shaped answer as it passes: a JSON body's `usage` at its end, or a stream's
 * usage chunk (sent because the gateway asked for `stream_options.include_usage`). When the
 * client did not ask for it, `strip` keeps the usage out of what it receives, so it sees the
 * stream it asked for. Events are passed on whole, as soon as each is complete.
 */
export class OpenAiUsageReader {
  #pending = ''
  #json: Buffer[] = []
  #jsonBytes = 0
  #observed: OpenAiObserved | undefined
  readonly #text = new TextDecoder()

  constructor (private readonly sse: boolean, private readonly strip: boolean) {}

  /** A chunk of the body; answers what to pass on to the client now. */
  write (chunk: Buffer): Buffer {
    if (!this.sse) {
      this.#jsonBytes += chunk.length
      if (this.#jsonBytes <= MAX_METERED_OPENAI_JSON_BYTES) this.#json.push(chunk)
      return chunk
    }
    // Events end with a blank line; CRLF is read as LF, and a character split between chunks waits for its end.
    this.#pending = (this.#pending + this.#text.decode(chunk, { stream: true })).replace(/\r\n/g, '\n')
    const boundary = this.#pending.lastIndexOf('\n\n')
    if (boundary === -1) {
      // An event that never ends is passed on unread rather than held.
      if (this.#pending.length <= MAX_EVENT_BYTES) return Buffer.alloc(0)
      const passed = this.#pending
      this.#pending = ''
      return Buffer.from(passed)
    }
    const events = this.#pending.slice(0, boundary).split('\n\n')
    this.#pending = this.#pending.slice(boundary + 2)
    return Buffer.from(events.map((event) => this.#event(event)).filter((event) => event !== null).map((event) => `${event}\n\n`).join(''))
  }

  /** The body ended: what is left to pass on, and the usage it reported. */
  end (): { rest: Buffer, observed: OpenAiObserved | undefined } {
    const rest = this.sse ? Buffer.from(this.#pending) : Buffer.alloc(0)
    if (!this.sse && this.#jsonBytes <= MAX_METERED_OPENAI_JSON_BYTES) this.#observe(parse(Buffer.concat(this.#json).toString('utf8')))
    this.#pending = ''
    this.#json = []
    return { rest, observed: this.#observed }
  }

  /** What was seen so far (a stream that broke off still spent what it reported). */
  get observed (): OpenAiObserved | undefined {
    return this.#observed
  }

  #observe (value: Record<string, unknown> | undefined): boolean {
    const usage = openAiUsage(value)
    if (usage === undefined) return false
    this.#observed = { usage, ...(typeof value?.model === 'string' ? { model: value.model } : {}) }
    return true
  }

  /** One event (the text between blank lines), as the client gets it; null to drop it. */
  #event (event: string): string | null {
    if (!event.startsWith('data:') || !event.includes('"usage"')) return event
    const value = parse(event.slice(5).trim())
    if (!this.#observe(value) || !this.strip) return event
    const choices = value!.choices
    if (Array.isArray(choices) && choices.length === 0) return null
    const { usage: _usage, ...rest } = value!
    return `data: ${JSON.stringify(rest)}`
  }
}
