import type { Identity } from '../auth/identity.js'
import { googleCount, jsonObject } from './request-body.js'
import { withoutAnswer, type Unanswered, type UpstreamAnswer } from './upstream-call.js'

/** Input limits this replica remembers (a model's does not change under its name). */
const MAX_KNOWN = 1_000

const UNDESCRIBED: Unanswered = {
  refused: 'Google would not describe the model this call names, whose input limit the gateway reserves for a call with tools that run at Google',
  missing: 'This call has tools that run at Google, for which the gateway reserves the model\'s whole input limit',
  what: 'input limit',
}

/**
 * The most input a model reads in one call, as Google's models.get gives it (`inputTokenLimit`):
 * what a call whose tools run at Google (URL context's pages, code execution's results, search
 * grounding) may be billed as its prompt, whatever its body holds. Read once per model and
 * replica, with the caller's own credential; calls that ask at once share the one read.
 */
export class InputLimits {
  readonly #tokens = new Map<string, Promise<number>>()

  constructor (private readonly read: (identity: Identity, model: string, requestId: string) => Promise<UpstreamAnswer>) {}

  /** `model`'s input limit; throws Google's 400, 403 or 404, or 503 when it gives none. */
  async tokens (identity: Identity, model: string, requestId: string): Promise<number> {
    const known = this.#tokens.get(model)
    if (known !== undefined) return await known
    const reading = this.#read(identity, model, requestId)
    if (this.#tokens.size >= MAX_KNOWN) this.#tokens.clear()
    this.#tokens.set(model, reading)
    // A failed read is not remembered: the next call asks again.
    reading.catch(() => { if (this.#tokens.get(model) === reading) this.#tokens.delete(model) })
    return await reading
  }

  async #read (identity: Identity, model: string, requestId: string): Promise<number> {
    const answer = await this.read(identity, model, requestId)
    const tokens = answer.statusCode === 200 ? googleCount(jsonObject(Buffer.from(answer.text))?.inputTokenLimit) : undefined
    if (tokens !== undefined && tokens > 0) return tokens
    throw withoutAnswer(answer, UNDESCRIBED)
  }
}
