import type { Identity } from '../auth/identity.js'
import { audioTokens, type ModalityTokenCount } from '../proxy/usage-tap.js'
import { googleCount, jsonObject } from './request-body.js'
import { withoutAnswer, type Unanswered, type UpstreamAnswer } from './upstream-call.js'

const UNCOUNTED: Unanswered = {
  refused: 'Google would not count this call\'s prompt, which holds media the gateway reserves for by Google\'s count',
  missing: 'This call holds media, whose tokens the gateway asks Google to count before reserving for them',
  what: 'count',
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

  /**
   * The tokens Google counts in `request` for `model`, and how many of them are audio (billed at
   * its own price); throws Google's 400, 403 or 404, or 503 when it gives no count.
   */
  async tokens (identity: Identity, model: string, request: Record<string, unknown>, requestId: string): Promise<{ tokens: number, audio: number }> {
    const { cachedContent: _camel, cached_content: _proto, ...uncached } = request
    const answer = await this.ask(identity, `/v1beta/models/${encodeURIComponent(model)}:countTokens`, { generateContentRequest: { ...uncached, model: `models/${model}` } }, requestId)
    const counted = answer.statusCode === 200 ? jsonObject(Buffer.from(answer.text)) : undefined
    const tokens = googleCount(counted?.totalTokens)
    if (tokens === undefined) throw withoutAnswer(answer, UNCOUNTED)
    const details = counted?.promptTokensDetails
    return { tokens, audio: Array.isArray(details) ? audioTokens(details as ModalityTokenCount[]) : 0 }
  }
}
