import { estimatePrompt, objectAt, promptFields, type BodyShape } from '../policy/request-body.js'

/** Parts of a message that are not text: each is reserved as one image. */
const NON_TEXT = ['image_url', 'input_audio', 'file']
/** The output caps a chat completion may name; `max_tokens` is what Google's endpoint has taken longest. */
const OUTPUT_CAPS = ['max_completion_tokens', 'max_tokens'] as const

const CHAT_PROMPT = promptFields({
  prompt: (body) => [body.messages, body.tools],
  nonText: NON_TEXT,
  maxOutput: (body) => body.max_completion_tokens ?? body.max_tokens,
  // `n` choices, each up to the cap.
  candidates: (body) => body.n,
  capKeys: [...OUTPUT_CAPS, 'n'],
  // A context cache, as Google's endpoint takes one: its tokens are in the prompt.
  cached: (body) => objectAt(objectAt(body, 'extra_body') ?? {}, 'google')?.cached_content,
  cacheKeys: ['cached_content'],
})

const EMBEDDINGS_PROMPT = promptFields({ prompt: (body) => [body.input], nonText: NON_TEXT, maxOutput: () => undefined, candidates: () => undefined, capKeys: [] })

/** The chat completion with every output cap it names (`max_tokens` when it names none) set to `tokens`, and `n` to `candidates` when given. */
function withMaxTokens (json: Record<string, unknown>, tokens: number, candidates?: number): Buffer {
  const named = OUTPUT_CAPS.filter((field) => typeof json[field] === 'number')
  const lowered = Object.fromEntries((named.length === 0 ? ['max_tokens'] : named).map((field) => [field, tokens]))
  return Buffer.from(JSON.stringify({ ...json, ...lowered, ...(candidates === undefined ? {} : { n: candidates }) }))
}

/** `chat/completions`: the messages are the prompt, `max_completion_tokens` or `max_tokens` the output cap. */
export const CHAT_BODY: BodyShape = {
  estimate: (bytes, declaredLength) => estimatePrompt(bytes, declaredLength, CHAT_PROMPT),
  withMaxOutput: withMaxTokens,
}

/** `embeddings`: the input is the prompt; there is no output to cap. */
export const EMBEDDINGS_BODY: BodyShape = {
  estimate: (bytes, declaredLength) => estimatePrompt(bytes, declaredLength, EMBEDDINGS_PROMPT),
  withMaxOutput: (json) => Buffer.from(JSON.stringify(json)),
}

/** The OpenAI-compatible calls reserved ahead like generateContent, by their path under `openai/`. */
export const METERED_CALLS: Readonly<Record<string, { generating: boolean, shape: BodyShape }>> = {
  'chat/completions': { generating: true, shape: CHAT_BODY },
  embeddings: { generating: false, shape: EMBEDDINGS_BODY },
}
