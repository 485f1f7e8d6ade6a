import { bodyAsRead, estimatePrompt, objectAt, promptFields, type BodyShape } from '../policy/request-body.js'

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

type Part = Record<string, unknown>

/** A data URL's media inline (`data:audio/wav;base64,…`), any other URL as a file Google reads (`https://…`, a YouTube link). */
function mediaPart (url: unknown): Part {
  const data = typeof url === 'string' ? /^data:([^;,]*)[^,]*,/.exec(url) : null
  if (data !== null) return { inlineData: { mimeType: data[1], data: (url as string).slice(data[0].length) } }
  return { fileData: { fileUri: String(url) } }
}

/** One content part of a chat message in Gemini's shape; text for any part that is not media (the local estimate counts it too). */
function geminiPart (part: unknown): Part {
  const { type, text } = (part ?? {}) as Record<string, unknown>
  const { image_url: image, input_audio: audio, file } = (part ?? {}) as Record<string, Record<string, unknown> | undefined>
  if (type === 'image_url') return mediaPart(image?.url)
  if (type === 'input_audio') return { inlineData: { mimeType: `audio/${String(audio?.format ?? 'wav')}`, data: audio?.data } }
  if (type === 'file') return file?.file_data !== undefined ? mediaPart(file.file_data) : { fileData: { fileUri: String(file?.file_id) } }
  return { text: typeof text === 'string' ? text : JSON.stringify(part) }
}

/**
 * A chat completion's messages as a GenerateContentRequest, for Google's countTokens to count its
 * media (images, audio, files) as it counts them in a generation: inline data stays inline, a URL
 * is a file Google reads. Text is carried along; the estimate from bytes stands where it is higher.
 */
function countableChat (json: Record<string, unknown>): Record<string, unknown> | undefined {
  const messages = Array.isArray(json.messages) ? json.messages as Array<Record<string, unknown>> : []
  const contents = messages.map((message) => {
    const content = message.content
    const parts = typeof content === 'string' ? [{ text: content }] : Array.isArray(content) ? content.map(geminiPart) : []
    return { role: message.role === 'assistant' ? 'model' : 'user', parts: parts.filter((part) => part.text !== '') }
  }).filter((content) => content.parts.length > 0)
  return contents.length === 0 ? undefined : { contents }
}

/** `chat/completions`: the messages are the prompt, `max_completion_tokens` or `max_tokens` the output cap. */
export const CHAT_BODY: BodyShape = {
  estimate: (bytes, declaredLength) => estimatePrompt(bytes, declaredLength, CHAT_PROMPT),
  withMaxOutput: withMaxTokens,
  countable: countableChat,
}

/** `embeddings`: the input is the prompt; there is no output to cap. */
export const EMBEDDINGS_BODY: BodyShape = {
  estimate: (bytes, declaredLength) => estimatePrompt(bytes, declaredLength, EMBEDDINGS_PROMPT),
  withMaxOutput: bodyAsRead,
}

/** The OpenAI-compatible calls reserved ahead like generateContent, by their path under `openai/`. */
export const METERED_CALLS: Readonly<Record<string, { generating: boolean, shape: BodyShape }>> = {
  'chat/completions': { generating: true, shape: CHAT_BODY },
  embeddings: { generating: false, shape: EMBEDDINGS_BODY },
}
