import type { Identity } from '../auth/identity.js'
import { BadRequestError, ServiceUnavailableError } from '../errors.js'
import type { Store } from '../store/store.js'
import { googleCount, jsonObject } from './request-body.js'
import type { UpstreamAnswer } from './upstream-call.js'

/** A context cache's name as the Gemini API gives it. */
const CACHE_NAME = /^cachedContents\/[\w-]+$/
/** Cache sizes this replica remembers (a cache's contents never change; its name is never reused). */
const MAX_KNOWN = 10_000
/** Where the tools a cache was made with are kept, for every replica: Google never shows them. */
const toolsKey = (name: string): string => `gemgate:policy:cache-tools:${name}`
/** How long they are kept: longer than caches usually live; a cache that outlives it counts as one of unknown making. */
const TOOLS_TTL_MS = 30 * 24 * 3600 * 1000
/** The tools of a cache the gateway did not see made: it may hold any. */
const UNKNOWN_TOOLS: readonly string[] = ['(a cache the gateway did not see made)']

/** A cache's size from Google's answer (`usageMetadata.totalTokenCount`), when it gives one. */
function tokensOf (answer: UpstreamAnswer): number | undefined {
  if (answer.statusCode !== 200) return undefined
  const usage = jsonObject(Buffer.from(answer.text))?.usageMetadata as { totalTokenCount?: unknown } | undefined
  return googleCount(usage?.totalTokenCount)
}

/**
 * How many tokens a context cache holds, as Google reports it: a call naming one is billed for
 * them in its prompt, so they are reserved with it. Read once per cache and replica, with the
 * caller's own credential (the cache is Google's to show them or not).
 */
export class ContextCaches {
  readonly #tokens = new Map<string, number>()
  readonly #tools = new Map<string, readonly string[]>()

  constructor (private readonly read: (identity: Identity, name: string, requestId: string) => Promise<UpstreamAnswer>, private readonly store: Store) {}

  /** Remembers, for every replica, the tools that run at Google (see serverTools in request-body.ts) a cache was made with. */
  async remember (name: string, tools: readonly string[]): Promise<void> {
    if (!CACHE_NAME.test(name)) return
    this.#known(name, tools)
    await this.store.set(toolsKey(name), tools.join(','), TOOLS_TTL_MS)
  }

  /**
   * The tools that run at Google a cache holds (every call naming it runs them, and Google never
   * shows them): those it was made with through the gateway, none, or, for a cache the gateway
   * did not see made (or cannot look up now), an unknown one, which may be any.
   */
  async serverTools (name: string): Promise<readonly string[] | undefined> {
    let tools = this.#tools.get(name)
    if (tools === undefined) {
      const kept = await this.store.get(toolsKey(name)).catch(() => null)
      if (kept === null) return UNKNOWN_TOOLS
      tools = this.#known(name, kept === '' ? [] : kept.split(','))
    }
    return tools.length === 0 ? undefined : tools
  }

  #known (name: string, tools: readonly string[]): readonly string[] {
    if (this.#tools.size >= MAX_KNOWN) this.#tools.clear()
    this.#tools.set(name, tools)
    return tools
  }

  /** The tokens of the cache `name`; 0 for one Google does not show the caller (the call will fail there too). */
  async tokens (identity: Identity, name: unknown, requestId: string): Promise<number> {
    if (typeof name !== 'string' || !CACHE_NAME.test(name)) {
      throw new BadRequestError(`cachedContent must name a context cache (cachedContents/…): ${JSON.stringify(name)} does not.`)
    }
    const known = this.#tokens.get(name)
    if (known !== undefined) return known
    const answer = await this.read(identity, name, requestId)
    const tokens = tokensOf(answer)
    if (tokens !== undefined) {
      if (this.#tokens.size >= MAX_KNOWN) this.#tokens.clear()
      this.#tokens.set(name, tokens)
      return tokens
    }
    if (answer.statusCode === 403 || answer.statusCode === 404) return 0
    throw new ServiceUnavailableError(`The context cache ${name} could not be read to reserve for its tokens (Google answered ${answer.statusCode}); try again shortly.`)
  }
}
