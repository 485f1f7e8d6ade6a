import { MODEL_IN_PATH } from '../proxy/usage.js'

// Which call a request is, to the policy, from its method and path alone. The patterns ignore
// letter case: whether Google's paths do is not the gateway's to assume.

/** Calls that produce output: their maxOutputTokens is reserved, and may be lowered. */
export const GENERATING = new Set(['generateContent', 'streamGenerateContent'])
/** Calls that cost tokens but produce no output tokens. */
export const EMBEDDING = new Set(['embedContent', 'batchEmbedContents'])
/** Methods on a model that cost nothing: like `models.get`, only the allow-list applies. */
export const FREE = new Set(['countTokens'])
/**
 * Any path that names a model, in whatever shape (MODEL_IN_PATH); one that is not a model call,
 * the model and at most a method at its end (not a trailing slash, a segment or a `;` parameter
 * after the method, a method named twice), is no call the gateway can price, whatever an upstream
 * that reads paths more loosely makes of it.
 */
const MODEL_CALL = new RegExp(`${MODEL_IN_PATH.source}(?::(\\w+))?$`, 'i')
/** models.list in a shape other than the route that filters it (`/v1beta/Models`, `/v1beta/models/`). */
export const MODEL_LIST = /^\/[^/]+\/models\/?(?:;.*)?$/i

/**
 * Writes on a resource that cost nothing: uploading or registering a file, making an empty corpus
 * or file search store, cancelling a long-running operation (`:cancel` as the one method of a
 * plain resource path, not after another method or a `;` parameter). Any other write on a route the
 * gateway does not know (Google's `dynamic/…` model routes, `environments:create`, a batch's
 * PATCH, a collection added after this gateway was built) is unpriced: refused under a token or
 * dollar limit. The OpenAI-compatible surface (/v1beta/openai/) sorts its own writes and asks
 * here only about its file uploads; the same calls in another spelling (/v1/openai/,
 * /v1beta/OpenAI/) reach the Gemini proxy, and are unknown writes here.
 */
export const FREE_WRITE = /^\/(?:upload\/)?[^/]+\/(?:files(?::register)?|corpora|fileSearchStores|(?:[^/:;]+\/)*[^/:;]+:cancel)$|^\/[^/]+\/openai\/files(?:\/|$)/i
/** Making a context cache: `POST /{version}/cachedContents` (its tools are remembered, src/policy/context-caches.ts). */
export const CACHE_MAKING = /^\/[^/]+\/cachedContents$/i
/** A `dynamic/{id}` route of Google's: a model call whose model the gateway cannot know. */
export const DYNAMIC_ROUTE = /^\/[^/]+\/(dynamic\/[^/:;]+)/i
/** Methods that change nothing upstream, so spend nothing; any other may (Google serves an unknown one as it will). */
const READS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS'])

/** True for a request that may spend: any method but a read. */
export const isWrite = (method: string): boolean => !READS.has(method)

/** Calls that name their model in the body: the OpenAI-compatible surface, cached contents, batches. */
export const MODEL_IN_BODY = /^\/[^/]+\/(?:openai\/|cachedContents|batches)/i

/** A path segment decoded, or as it is when it does not decode. */
export function decoded (text: string): string {
  if (!text.includes('%')) return text
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/** The model a path names and the method it calls (`/v1beta/models/gemini-3-flash-preview:generateContent`). */
export function modelCall (path: string): { model: string, method?: string } | null {
  const match = MODEL_CALL.exec(path)
  return match === null ? null : { model: decoded(match[1]!), ...(match[2] === undefined ? {} : { method: match[2] }) }
}

/**
 * Calls on a resource rather than a model that spend: the Interactions API (a model or an agent
 * named in the body), a file search store's import or upload (which embeds), a tuning job, a
 * context cache (its tokens billed when it is made).
 */
export const UNPRICED_RESOURCE = /^\/(?:upload\/)?[^/]+\/(?:interactions|tunedModels|cachedContents|(fileSearchStores)\/[^/]+:(?:importFile|uploadToFileSearchStore))$/i
