import type { Identity } from '../auth/identity.js'
import { BadRequestError, ServiceUnavailableError } from '../errors.js'

/** A context cache's name as the Gemini API gives it. */
const CACHE_NAME = /^cachedContents\/[\w-]+$/
/** Cache sizes this replica remembers (a cache's contents never change; its name is never reused). */
const MAX_KNOWN = 10_000

/** What Google answered about a cache: its status, and its size when it said. */
export interface CacheAnswer { status: number, tokens?: number }

/**
 * How many tokens a context cache holds, as Google reports it: a call naming one is billed for
 * them in its prompt, so they are reserved with it. Read once per cache and replica, with the
 * caller's own credential (the cache is Google's to show them or not).
 */
export class ContextCaches {
  readonly #tokens = new Map<string, number>()

  constructor (private readonly read: (identity: Identity, name: string) => Promise<CacheAnswer>) {}

  /** The tokens of the cache `name`; 0 for one Google does not show the caller (the call will fail there too). */
  async tokens (identity: Identity, name: unknown): Promise<number> {
    if (typeof name !== 'string' || !CACHE_NAME.test(name)) {
      throw new BadRequestError(`cachedContent must name a context cache (cachedContents/…): ${JSON.stringify(name)} does not.`)
    }
    const known = this.#tokens.get(name)
    if (known !== undefined) return known
    const answer = await this.read(identity, name)
    if (answer.status === 200 && answer.tokens !== undefined) {
      if (this.#tokens.size >= MAX_KNOWN) this.#tokens.clear()
      this.#tokens.set(name, answer.tokens)
      return answer.tokens
    }
    if (answer.status === 403 || answer.status === 404) return 0
    throw new ServiceUnavailableError(`The context cache ${name} could not be read to reserve for its tokens (Google answered ${answer.status}); try again shortly.`)
  }
}
