import type { Identity } from '../auth/identity.js'
import { BadRequestError, ServiceUnavailableError } from '../errors.js'
import { googleCount, jsonObject } from './request-body.js'
import type { UpstreamAnswer } from './upstream-call.js'

/** A context cache's name as the Gemini API gives it. */
const CACHE_NAME = /^cachedContents\/[\w-]+$/
/** Cache sizes this replica remembers (a cache's contents never change; its name is never reused). */
const MAX_KNOWN = 10_000

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

  constructor (private readonly read: (identity: Identity, name: string, requestId: string) => Promise<UpstreamAnswer>) {}

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
