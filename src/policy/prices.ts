import { LONG_CONTEXT_TOKENS, type PriceRow } from '../config/policy.js'

/**
 * Gemini's paid-tier prices as shipped, USD per 1M tokens (thinking tokens are billed as output;
 * `above_200k`: the Pro models' price for prompts over 200K tokens; `audio_input`: a prompt's
 * audio, where Google bills it above text, images and video). Best-known values on
 * 2026-12-01, from Google's pricing page as quoted by public price lists: check
 * https://ai.google.dev/gemini-api/docs/pricing and override them in `prices:` when they differ.
 * A change or a retirement is a new dated row, never an edit.
 */
export const SHIPPED_PRICES: Readonly<Record<string, readonly PriceRow[]>> = {
  'gemini-3-pro-preview': [{ from: '2025-11-18', input: 2, output: 12, cached_input: 0.2, above_200k: { input: 4, output: 18, cached_input: 0.4 } }],
  'gemini-3.1-pro-preview': [{ from: '2026-02-19', input: 2, output: 12, cached_input: 0.2, above_200k: { input: 4, output: 18, cached_input: 0.4 } }],
  'gemini-3-flash-preview': [{ from: '2025-12-17', input: 0.5, output: 3, cached_input: 0.05, audio_input: 1, cached_audio_input: 0.1 }],
  'gemini-3.1-flash-lite-preview': [{ from: '2026-03-03', input: 0.25, output: 1.5, cached_input: 0.025, audio_input: 0.5, cached_audio_input: 0.05 }],
  // Launched at half price until the end of 2026. Its audio price was not found published: the
  // Flash line's (twice the text price), so that audio is never undercharged; check it.
  'gemini-3.8-flash': [
    { from: '2026-10-01', input: 0.75, output: 3.75, cached_input: 0.075, audio_input: 1.5, cached_audio_input: 0.15 },
    { from: '2027-01-01', input: 1.5, output: 7.5, cached_input: 0.15, audio_input: 3, cached_audio_input: 0.3 },
  ],
  // Embeddings: input only. Google's embedContent answers report no usage: a call is charged its estimate.
  'gemini-embedding-001': [{ from: '2025-07-14', input: 0.15, output: 0 }],
  // The 2.5 generation, retired on 2026-12-01: kept so that older usage is still priced.
  'gemini-2.5-pro': [
    { from: '2025-06-17', input: 1.25, output: 10, cached_input: 0.125, above_200k: { input: 2.5, output: 15, cached_input: 0.25 } },
    { from: '2026-12-01', retired: true },
  ],
  'gemini-2.5-flash': [{ from: '2025-06-17', input: 0.3, output: 2.5, cached_input: 0.03, audio_input: 1, cached_audio_input: 0.1 }, { from: '2026-12-01', retired: true }],
  'gemini-2.5-flash-lite': [{ from: '2025-07-22', input: 0.1, output: 0.4, cached_input: 0.01, audio_input: 0.3, cached_audio_input: 0.03 }, { from: '2026-12-01', retired: true }],
  // Image and speech models, named like text models at many times their output price. Their
  // output is priced at the image's (or audio's) rate, whatever it holds: text output costs less
  // (Nano Banana's $2.50, Nano Banana Pro's $12), never more.
  'gemini-2.5-flash-image': [{ from: '2025-08-26', input: 0.3, output: 30, cached_input: 0.03 }, { from: '2026-12-01', retired: true }],
  'gemini-3-pro-image-preview': [{ from: '2025-11-20', input: 2, output: 120, cached_input: 0.2 }],
  'gemini-2.5-flash-preview-tts': [{ from: '2025-05-20', input: 0.5, output: 10 }, { from: '2026-12-01', retired: true }],
  'gemini-2.5-pro-preview-tts': [{ from: '2025-05-20', input: 1, output: 20 }, { from: '2026-12-01', retired: true }],
}

/**
 * What may follow a listed name in the name of the same model at the same price: versions and
 * dates (`-001`, `-09-2025`, `-preview-05-20`, `-exp-03-25`, `-latest`). Anything else names
 * another model (`gemini-2.5-flash` + `-image`, `-preview-tts`, `-native-audio-…`), often a
 * dearer one: such a name is not priced as the listed one.
 */
const SAME_MODEL = /^(?:-(?:\d+|preview|exp|latest))*$/

/** Prices in nano-USD per token (USD per 1M tokens × 1000): whole numbers that Redis adds exactly. */
export interface TokenPrice {
  input: number
  output: number
  cachedInput: number
  /** A prompt's audio tokens, fresh and read from a context cache. */
  audioInput: number
  cachedAudioInput: number
}

const NANO_PER_MILLION = 1000
const DAY_MS = 86_400_000
const MAX_REMEMBERED_NAMES = 1_000

/** Whether a prompt of `promptTokens` is billed at the long-context price (Google: "prompts longer than 200K tokens"). */
export function isLongContext (promptTokens: number): boolean {
  return promptTokens > LONG_CONTEXT_TOKENS
}

/** A row's price for a prompt of that size: its `above_200k` price past the threshold, when it has one. */
function nano (row: PriceRow, long: boolean): TokenPrice {
  const price = long && row.above_200k !== undefined ? row.above_200k : row
  const input = price.input ?? 0
  const cachedInput = price.cached_input ?? input
  // Without its own price, audio costs what text does (the Pro models bill all input alike).
  const audioInput = price.audio_input ?? input
  return {
    input: input * NANO_PER_MILLION,
    output: (price.output ?? 0) * NANO_PER_MILLION,
    cachedInput: cachedInput * NANO_PER_MILLION,
    audioInput: audioInput * NANO_PER_MILLION,
    cachedAudioInput: (price.cached_audio_input ?? (price.audio_input === undefined ? cachedInput : audioInput)) * NANO_PER_MILLION,
  }
}

/** Each of the dearest listed prices: what a model without a row is charged. */
function dearest (prices: TokenPrice[]): TokenPrice {
  const most: TokenPrice = { input: 0, output: 0, cachedInput: 0, audioInput: 0, cachedAudioInput: 0 }
  for (const price of prices) {
    for (const kind of Object.keys(most) as Array<keyof TokenPrice>) most[kind] = Math.max(most[kind], price[kind])
  }
  return most
}

/** The token counts a call was billed for, as `usageMetadata` reports them. */
export interface BilledTokens {
  prompt: number
  cached: number
  output: number
  thinking: number
  /** Of the prompt, the tokens of audio (`promptTokensDetails`), and of those read from a context cache (`cacheTokensDetails`). */
  audio: number
  cachedAudio: number
}

/** The shipped table with the config's rows on top (a model named in the config replaces its shipped rows). */
export class PriceTable {
  readonly #rows: Map<string, PriceRow[]>
  /** The dearest listed price, for prompts up to the threshold and over it. */
  readonly #fallback: { short: TokenPrice, long: TokenPrice }
  // Which listed name a model is priced under, per model name seen (bounded: names come from clients).
  readonly #names = new Map<string, string | null>()
  // Today's prices per listed name (bounded by the table).
  readonly #today = new Map<string | undefined, { day: number, short: TokenPrice, long: TokenPrice }>()

  constructor (overrides: Readonly<Record<string, readonly PriceRow[]>>) {
    const merged = { ...SHIPPED_PRICES, ...overrides }
    this.#rows = new Map(Object.entries(merged).map(([model, rows]) => [model, [...rows].sort((a, b) => a.from.localeCompare(b.from))]))
    // A model without a price is charged like the dearest one: a budget cannot be escaped by an unlisted name.
    const priced = [...this.#rows.values()].flat().filter((row) => row.retired !== true)
    this.#fallback = { short: dearest(priced.map((row) => nano(row, false))), long: dearest(priced.map((row) => nano(row, true))) }
  }

  #listedName (model: string | undefined): string | undefined {
    if (model === undefined) return undefined
    // One lookup on the hot path: null remembers a model that no listed name prices.
    const known = this.#names.get(model)
    if (known !== undefined) return known ?? undefined
    const name = [...this.#rows.keys()].filter((listed) => model.startsWith(listed) && SAME_MODEL.test(model.slice(listed.length))).sort((a, b) => b.length - a.length)[0]
    if (this.#names.size < MAX_REMEMBERED_NAMES) this.#names.set(model, name ?? null)
    return name
  }

  /** A bounded metric label for a model: the listed name it is priced under, else `other`. */
  labelOf (model: string | undefined): string {
    return this.#listedName(model) ?? 'other'
  }

  /**
   * The price of `model` on `at` (a date or a timestamp) for a prompt of `promptTokens`: the longest
   * listed name it starts with (followed only by a version or a date), its last row from on or before that day, at that row's long-context
   * price past 200K tokens.
   */
  priceOf (model: string | undefined, at: Date | number = Date.now(), promptTokens = 0): TokenPrice {
    const name = this.#listedName(model)
    // Asked twice per call (reserve, settle) and the answer changes at most once a day.
    const time = typeof at === 'number' ? at : at.getTime()
    const day = Math.floor(time / DAY_MS)
    let prices = this.#today.get(name)
    if (prices === undefined || prices.day !== day) this.#today.set(name, prices = { day, ...this.#pricesOn(name, new Date(time)) })
    return isLongContext(promptTokens) ? prices.long : prices.short
  }

  #pricesOn (name: string | undefined, at: Date): { short: TokenPrice, long: TokenPrice } {
    const rows = name === undefined ? [] : this.#rows.get(name)!
    const day = at.toISOString().slice(0, 10)
    const priced = rows.filter((row) => row.from <= day && row.retired !== true)
    // A retired model that still answers keeps its last price.
    const row = priced.at(-1) ?? rows.filter((candidate) => candidate.retired !== true)[0]
    return row === undefined ? this.#fallback : { short: nano(row, false), long: nano(row, true) }
  }

  /**
   * What a call cost in nano-USD: at the price for its real prompt size, cached prompt tokens at
   * the cached price, audio at the audio price, thinking billed as output.
   */
  costOf (model: string | undefined, tokens: BilledTokens, at: Date | number = Date.now()): number {
    const price = this.priceOf(model, at, tokens.prompt)
    const fresh = Math.max(0, tokens.prompt - tokens.cached)
    const cachedAudio = Math.min(tokens.cached, tokens.cachedAudio)
    const freshAudio = Math.min(fresh, Math.max(0, tokens.audio - cachedAudio))
    return Math.ceil((fresh - freshAudio) * price.input + freshAudio * price.audioInput +
      (tokens.cached - cachedAudio) * price.cachedInput + cachedAudio * price.cachedAudioInput + (tokens.output + tokens.thinking) * price.output)
  }

  /**
   * The price per prompt token, in whole nano-USD, of a prompt of `promptTokens` of which
   * `audioTokens` are audio: a reservation's single input price, rounded up.
   */
  inputPriceOf (price: TokenPrice, promptTokens: number, audioTokens = 0): number {
    const audio = Math.min(audioTokens, promptTokens)
    if (audio === 0 || price.audioInput <= price.input) return price.input
    return Math.ceil(((promptTokens - audio) * price.input + audio * price.audioInput) / promptTokens)
  }
}
