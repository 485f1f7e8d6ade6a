import { promisify } from 'node:util'
import { brotliDecompress, gunzip, inflate, zstdDecompress, type ZlibOptions } from 'node:zlib'

/** The most a compressed body is decompressed to, and a body of no declared size read to: Google takes requests of up to 20 MB. */
export const MAX_DECOMPRESSED_BYTES = 20 * 1024 * 1024

type Decoder = (bytes: Buffer, options: ZlibOptions) => Promise<Buffer>
/** The request encodings the policy reads (HTTP's `deflate` is zlib's format), decompressed in the thread pool. */
const DECODERS: Readonly<Record<string, Decoder>> = {
  gzip: promisify(gunzip),
  'x-gzip': promisify(gunzip),
  deflate: promisify(inflate),
  br: promisify(brotliDecompress) as Decoder,
  zstd: promisify(zstdDecompress) as Decoder,
}

/** A body in one of the encodings above, decompressed; undefined for another encoding, a broken body, or one over {@link MAX_DECOMPRESSED_BYTES}. */
export async function decompressed (bytes: Buffer, encoding: string): Promise<Buffer | undefined> {
  const decode = DECODERS[encoding.trim().toLowerCase()]
  return await decode?.(bytes, { maxOutputLength: MAX_DECOMPRESSED_BYTES }).catch(() => undefined)
}

/** Gemini 3's largest answer: what a call that names no maxOutputTokens may produce. */
export const DEFAULT_MAX_OUTPUT_TOKENS = 65_536
/** Tokens reserved for each part that is not text (an image, a file): Google counts an image as 258. */
export const NON_TEXT_PART_TOKENS = 258
/** Bytes of text per token, rounded down so the estimate errs high for prose. */
const BYTES_PER_TOKEN = 3
/**
 * A generation's body longer than this is counted by Google's countTokens (free) before its call
 * is reserved. Three bytes a token holds for prose, not for text made to defeat it: Gemini's
 * tokenizer takes digits one by one and characters it does not know byte by byte, down to a token
 * per byte. A shorter body is reserved for that most (at most this many tokens, settled with
 * Google's usage after); above it, the round trip is small beside the generation.
 */
export const COUNTED_PROMPT_BYTES = 32 * 1024

/** What the policy needs from a generation request's body. */
export interface PromptEstimate {
  /** An estimate of the prompt's tokens, erring high for prose; settled with Google's count afterwards. */
  promptTokens: number
  /** The most the prompt's tokens can be: a token per byte of its text (Gemini's tokenizer never makes more), its other parts as estimated. */
  maxPromptTokens?: number
  /** `generationConfig.maxOutputTokens`, when the body names it. */
  maxOutputTokens?: number
  /** How many answers the body asks for (each up to the output cap), when it names it. */
  candidates?: number
  /** The parsed body, to rewrite maxOutputTokens in. */
  json?: Record<string, unknown>
  /** Estimated by its size, not parsed: {@link jsonObject} reads it if its output cap must be set. */
  unread?: true
  /** The context cache the body names (`cachedContents/…`): its tokens are part of the prompt. */
  cachedContent?: unknown
  /** The body holds a part that is not text (an image, audio, video, a file): its tokens cannot be told from its bytes. */
  media?: true
  /** Of the prompt, the tokens Google counted as audio (billed at its own price). */
  audioTokens?: number
  /** The tools the body names that run at Google (URL context, search, code execution…): the input they bring in is billed as prompt. */
  serverTools?: string[]
}

/**
 * The estimate of a generation's body longer than COUNTED_PROMPT_BYTES, parsed (to be counted by
 * Google, then forwarded as counted); undefined for a shorter one, or one that is not JSON.
 */
export function longPrompt (estimate: PromptEstimate, bytes: Buffer): PromptEstimate | undefined {
  if (bytes.length <= COUNTED_PROMPT_BYTES) return undefined
  if (estimate.json !== undefined) return estimate
  const json = jsonObject(bytes)
  if (json === undefined) return undefined
  // Unread, it named no cap, media, cache or tools (its text made it no smaller than its size).
  const { unread: _unread, ...read } = estimate
  return { ...read, json }
}

/** Where a body shape keeps its prompt and its output cap. */
export interface PromptFields {
  /** The values that hold the prompt (its text, and parts that are not text). */
  prompt: (body: Record<string, unknown>) => unknown[]
  /** Keys whose value is a part that is not text (an image, a file): each counts as {@link NON_TEXT_PART_TOKENS}. */
  nonText: ReadonlySet<string>
  /** The most output tokens the body asks for, as it names them. */
  maxOutput: (body: Record<string, unknown>) => unknown
  /** How many answers the body asks for, as it names it: each may be as long as the cap. */
  candidates: (body: Record<string, unknown>) => unknown
  /** The context cache the body names, if its shape can name one. */
  cached?: (body: Record<string, unknown>) => unknown
  /** The body's tools that run at Google, if its shape can name any (see {@link serverTools}). */
  serverTools?: (body: Record<string, unknown>) => string[] | undefined
  /**
   * Matches a body that may hold a part that is not text, an output cap, a context cache or tools: a key of one, or a
   * `\u` escape (which could spell one). Only such a body is parsed for its estimate.
   */
  mustRead: RegExp
}

/** A body shape's fields, by the keys of its non-text parts, of its output caps, and of its context cache and tools. */
export function promptFields (fields: Pick<PromptFields, 'prompt' | 'maxOutput' | 'candidates' | 'cached' | 'serverTools'> & { nonText: readonly string[], capKeys: readonly string[], cacheKeys?: readonly string[], toolKeys?: readonly string[] }): PromptFields {
  const keys = [...fields.nonText, ...fields.capKeys, ...fields.cacheKeys ?? [], ...fields.toolKeys ?? []].map((key) => key.replace(/[^\w]/g, '\\$&'))
  return { ...fields, nonText: new Set(fields.nonText), mustRead: new RegExp(`"(?:${keys.join('|')})"|\\\\u`) }
}

// Google's JSON takes every field by its camelCase name or its proto name (`generation_config`,
// `max_output_tokens`, `inline_data`): each is read by both, or a client could name its output cap
// where the policy does not look.
const CONFIG_FIELDS = ['generationConfig', 'generation_config'] as const
const CAP_FIELDS = ['maxOutputTokens', 'max_output_tokens'] as const
const CANDIDATE_FIELDS = ['candidateCount', 'candidate_count'] as const

/** The object a body holds at `field`, or undefined when it holds none there. */
export function objectAt (body: Record<string, unknown>, field: string): Record<string, unknown> | undefined {
  const value = body[field]
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined
}

/** The largest value a Gemini body's config names under any of `names`, by either spelling (an int32 may be a string of digits in Google's JSON). */
function largestInConfig (body: Record<string, unknown>, names: readonly string[]): number | undefined {
  let largest: number | undefined
  for (const field of CONFIG_FIELDS) {
    const config = objectAt(body, field)
    if (config === undefined) continue
    for (const name of names) {
      const value = config[name]
      const cap = googleInteger(value)
      if (typeof cap === 'number' && (largest === undefined || cap > largest)) largest = cap
    }
  }
  return largest
}

/** A Gemini tool's fields that are the caller's own: functions the model asks the caller to run, whose results come back in a later prompt. */
const CLIENT_TOOLS = new Set(['functionDeclarations', 'function_declarations'])

/**
 * Tools Google bills per search query or grounded prompt, a fee outside the usage it reports and
 * outside the gateway's price table (Google Search, its older retrieval form, Google Maps,
 * enterprise web search), by either spelling.
 */
export const FEE_TOOLS = new Set(['googleSearch', 'google_search', 'googleSearchRetrieval', 'google_search_retrieval', 'googleMaps', 'google_maps', 'enterpriseWebSearch', 'enterprise_web_search'])

/**
 * The tools a Gemini body names that run at Google, by their field names: every kind but function
 * declarations (URL context, code execution, file search, search grounding, computer use, and any
 * kind added after this gateway was built). Each brings input of its own, billed as prompt tokens
 * (Google reports it as toolUsePromptTokenCount) and not in the body. `tools` in a shape Google
 * would not read as a list of tools counts as one, unknown; undefined when there are none.
 */
export function serverTools (tools: unknown): string[] | undefined {
  if (tools === undefined || tools === null) return undefined
  if (!Array.isArray(tools)) return ['tools']
  const names: string[] = []
  for (const tool of tools) {
    if (typeof tool !== 'object' || tool === null || Array.isArray(tool)) names.push('tools')
    else for (const name in tool) if (!CLIENT_TOOLS.has(name)) names.push(name)
  }
  return names.length === 0 ? undefined : names
}

/**
 * Gemini's generateContent (and embedContent, batchEmbedContents) body. Its prompt is all of its
 * text, wherever it is (contents, content, systemInstruction, tools, requests): a field the
 * estimate skipped would be a prompt reserved as nothing. The config's few strings err high.
 */
export const GEMINI_PROMPT: PromptFields = promptFields({
  prompt: (body) => [body],
  nonText: ['inlineData', 'inline_data', 'fileData', 'file_data'],
  maxOutput: (body) => largestInConfig(body, CAP_FIELDS),
  candidates: (body) => largestInConfig(body, CANDIDATE_FIELDS),
  capKeys: [...CAP_FIELDS, ...CANDIDATE_FIELDS],
  cached: (body) => body.cachedContent ?? body.cached_content,
  cacheKeys: ['cachedContent', 'cached_content'],
  serverTools: (body) => serverTools(body.tools),
  toolKeys: ['tools'],
})

function textBytes (value: unknown, counts: { text: number, parts: number }, nonText: ReadonlySet<string>): void {
  if (typeof value === 'string') {
    counts.text += Buffer.byteLength(value)
    return
  }
  if (Array.isArray(value)) {
    for (const item of value) textBytes(item, counts, nonText)
    return
  }
  if (typeof value !== 'object' || value === null) return
  // for…in over a parsed body (own keys only): no entries array per object, on every call.
  const object = value as Record<string, unknown>
  for (const key in object) {
    if (nonText.has(key)) counts.parts++
    else textBytes(object[key], counts, nonText)
  }
}

/**
 * Estimates a JSON request body's prompt tokens: its text at three bytes a token (tokenizers
 * average about four), plus a fixed amount per image or file. A body that is not JSON counts by
 * its size.
 */
export function estimatePrompt (bytes: Buffer | undefined, declaredLength: number, fields: PromptFields = GEMINI_PROMPT): PromptEstimate {
  if (bytes === undefined) return { promptTokens: Math.ceil(declaredLength / BYTES_PER_TOKEN), maxPromptTokens: declaredLength }
  // Most bodies name no image, file or output cap: their size is above their text (JSON's escapes
  // only shrink when read, and a `\u` one makes the body read), so they are not parsed at all.
  if (!fields.mustRead.test(bytes.toString('latin1'))) return { promptTokens: Math.ceil(bytes.length / BYTES_PER_TOKEN), maxPromptTokens: bytes.length, unread: true }
  const body = jsonObject(bytes)
  if (body === undefined) return { promptTokens: Math.ceil(bytes.length / BYTES_PER_TOKEN), maxPromptTokens: bytes.length }
  const counts = { text: 0, parts: 0 }
  textBytes(fields.prompt(body), counts, fields.nonText)
  const max = fields.maxOutput(body)
  const candidates = fields.candidates(body)
  const cached = fields.cached?.(body)
  const tools = fields.serverTools?.(body)
  return {
    promptTokens: Math.ceil(counts.text / BYTES_PER_TOKEN) + counts.parts * NON_TEXT_PART_TOKENS,
    maxPromptTokens: counts.text + counts.parts * NON_TEXT_PART_TOKENS,
    ...(positiveInteger(max) ? { maxOutputTokens: max } : {}),
    ...(positiveInteger(candidates) ? { candidates } : {}),
    ...(cached === undefined || cached === null ? {} : { cachedContent: cached }),
    ...(counts.parts > 0 ? { media: true as const } : {}),
    ...(tools === undefined ? {} : { serverTools: tools }),
    json: body,
  }
}

/** An integer as Google's JSON gives it: a number, or (int64, and int32 as parsers take it) a string of digits; undefined otherwise. */
export function googleInteger (value: unknown): number | undefined {
  if (typeof value === 'number') return value
  return typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : undefined
}

/** A count of tokens as Google's JSON gives it (see {@link googleInteger}): a whole number, not negative; undefined otherwise. */
export function googleCount (value: unknown): number | undefined {
  const count = googleInteger(value)
  return count !== undefined && Number.isSafeInteger(count) && count >= 0 ? count : undefined
}

const positiveInteger = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value) && value > 0

/**
 * A parsed JSON body as the gateway read it, to forward in place of the client's bytes: each key
 * once. JSON.parse keeps the last of two equal keys and Google's parser may keep the first, so a
 * body the gateway decided on (its model, output cap, media, context cache or tools) goes to
 * Google as read, or Google could serve a call the gateway neither checked nor reserved for.
 */
export function bodyAsRead (json: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify(json))
}

/** The body as a JSON object, or undefined when it is not one. */
export function jsonObject (bytes: Buffer): Record<string, unknown> | undefined {
  let json: unknown
  try {
    json = JSON.parse(bytes.toString('utf8'))
  } catch {
    return undefined
  }
  return typeof json === 'object' && json !== null && !Array.isArray(json) ? json as Record<string, unknown> : undefined
}

/** A model name as a body gives it (`gemini-3-flash-preview` or `models/…`), without `models/`; undefined when it is not a string. */
export function bareModelName (value: unknown): string | undefined {
  return typeof value === 'string' ? value.replace(/^models\//, '') : undefined
}

/**
 * The body with `generationConfig.maxOutputTokens` set to `tokens` (and `candidateCount` to
 * `candidates`, when given), as the only cap and count it names: a config under either spelling
 * joins the one `generationConfig`, without its own.
 */
export function withMaxOutputTokens (json: Record<string, unknown>, tokens: number, candidates?: number): Buffer {
  const config: Record<string, unknown> = {}
  for (const field of CONFIG_FIELDS) Object.assign(config, objectAt(json, field))
  for (const name of [...CAP_FIELDS, ...CANDIDATE_FIELDS]) delete config[name]
  const { generationConfig: _camel, generation_config: _proto, ...rest } = oneCache(json)
  return Buffer.from(JSON.stringify({ ...rest, generationConfig: { ...config, maxOutputTokens: tokens, ...(candidates === undefined ? {} : { candidateCount: candidates }) } }))
}

/** A Gemini body naming its context cache once, as the policy read it (`cachedContent`), when it names one under both spellings. */
function oneCache (json: Record<string, unknown>): Record<string, unknown> {
  if (!('cachedContent' in json && 'cached_content' in json)) return json
  const { cachedContent: _camel, cached_content: _proto, ...rest } = json
  const cached = GEMINI_PROMPT.cached?.(json)
  return cached === undefined || cached === null ? rest : { ...rest, cachedContent: cached }
}

/** How the policy reads a call's body and lowers its output cap: Gemini's shape, or another API's. */
export interface BodyShape {
  estimate: (bytes: Buffer | undefined, declaredLength: number) => PromptEstimate
  /** The body with its output cap set to `tokens` for each answer (and how many, `candidates`, when given). */
  withMaxOutput: (json: Record<string, unknown>, tokens: number, candidates?: number) => Buffer
  /** The body as a GenerateContentRequest, for Google's countTokens to count its media; undefined when it holds nothing to count. */
  countable?: (json: Record<string, unknown>) => Record<string, unknown> | undefined
  /** The body as the policy read it, each field once (a field under two spellings as the one read); without it, {@link bodyAsRead}. */
  asRead?: (json: Record<string, unknown>) => Buffer
}

/** Gemini's generateContent body: `contents`, `generationConfig.maxOutputTokens`. */
export const GEMINI_BODY: BodyShape = {
  estimate: estimatePrompt,
  withMaxOutput: withMaxOutputTokens,
  countable: (json) => json,
  asRead: (json) => bodyAsRead(oneCache(json)),
}
