import type { Identity } from '../auth/identity.js'
import { BadRequestError, ForbiddenError, NotFoundError, ServiceUnavailableError, withExtras } from '../errors.js'
import { googleCount, jsonObject } from './request-body.js'
import type { UpstreamAnswer } from './upstream-call.js'

/** Google's refusals that it would give the call itself, answered as Google gave them. */
const REFUSALS: Readonly<Record<number, new (message: string) => Error>> = { 400: BadRequestError, 403: ForbiddenError, 404: NotFoundError }

/** Google's own message in an error answer, if it gives one. */
function googleMessage (answer: UpstreamAnswer): string {
  const error = jsonObject(Buffer.from(answer.text))?.error as { message?: unknown } | undefined
  return typeof error?.message === 'string' ? error.message : `it answered ${answer.statusCode}`
}

/**
 * The prompt tokens of a generation that holds media (an image, audio, video, a PDF, a file),
 * counted by Google's countTokens (which is free) before the call is reserved. Text can be
 * estimated from its bytes; media cannot: an hour of video is about a million tokens, in a few
 * megabytes or in a file reference of a hundred bytes. Asked with the caller's own credential,
 * for the model the call names; the request is the call's own, without its context cache (whose
 * tokens are read and added on their own, src/policy/context-caches.ts).
 */
export class MediaPrompts {
  constructor (private readonly ask: (identity: Identity, path: string, json: unknown, requestId: string) => Promise<UpstreamAnswer>) {}

  /** The tokens Google counts in `request` for `model`; throws Google's 400, 403 or 404, or 503 when it gives no count. */
  async tokens (identity: Identity, model: string, request: Record<string, unknown>, requestId: string): Promise<number> {
    const { cachedContent: _camel, cached_content: _proto, ...uncached } = request
    const answer = await this.ask(identity, `/v1beta/models/${encodeURIComponent(model)}:countTokens`, { generateContentRequest: { ...uncached, model: `models/${model}` } }, requestId)
    const tokens = answer.statusCode === 200 ? googleCount(jsonObject(Buffer.from(answer.text))?.totalTokens) : undefined
    if (tokens !== undefined) return tokens
    const Refusal = REFUSALS[answer.statusCode]
    if (Refusal !== undefined) throw new Refusal(`Google would not count this call's prompt, which holds media the gateway reserves for by Google's count: ${googleMessage(answer)}`)
    throw withExtras(new ServiceUnavailableError(`This call holds media, whose tokens the gateway asks Google to count before reserving for them, and Google gave no count (${answer.statusCode === 200 ? 'an answer without one' : `it answered ${answer.statusCode}`}); try again shortly.`), { headers: { 'retry-after': '1' } })
  }
}
