import { copyDetails, type TokenUsage } from '../proxy/usage-tap.js'

const USAGE_KEY = Buffer.from('"usageMetadata"')

function parseObject (data: Buffer): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(data.toString('utf8')) as unknown
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

/**
 * The client's first message, which must be a `setup`: its model and tools, and the message to
 * send upstream. Fields an ephemeral token locked (its Live setup) replace the client's, as Google
 * does for its own constrained tokens. The message goes upstream as read here, each key once:
 * JSON.parse keeps the last of two equal keys and Google's parser may keep the first, so a setup
 * naming its model twice could otherwise open a session on a model the policy did not check.
 */
export function liveSetup (data: Buffer, locked?: Record<string, unknown>): { data: Buffer, model: string | undefined, tools: unknown } | { reason: string } {
  const message = parseObject(data)
  const setup = message?.setup
  if (setup === null || typeof setup !== 'object') return { reason: 'The first message of a Live session must be a setup message.' }
  const merged = locked === undefined ? setup as Record<string, unknown> : { ...setup, ...locked }
  const model = typeof merged.model === 'string' ? merged.model.replace(/^models\//, '') : undefined
  return { data: Buffer.from(JSON.stringify({ ...message, setup: merged })), model, tools: merged.tools }
}

/** The token counts a Live server message reports (`responseTokenCount` is the answer's), if it reports any. */
export function liveUsage (data: Buffer): TokenUsage | undefined {
  // Most messages are audio or text: only those that name usageMetadata are parsed.
  if (!data.includes(USAGE_KEY)) return undefined
  const metadata = parseObject(data)?.usageMetadata as Record<string, unknown> | undefined
  if (metadata === undefined || metadata === null || typeof metadata !== 'object') return undefined
  const count = (name: string): number => typeof metadata[name] === 'number' ? metadata[name] : 0
  const usage: TokenUsage = {
    promptTokenCount: count('promptTokenCount'),
    cachedContentTokenCount: count('cachedContentTokenCount'),
    candidatesTokenCount: count('responseTokenCount') + count('candidatesTokenCount'),
    thoughtsTokenCount: count('thoughtsTokenCount'),
    toolUsePromptTokenCount: count('toolUsePromptTokenCount'),
    totalTokenCount: count('totalTokenCount'),
  }
  // A turn's audio (most of a voice session's prompt) is billed at the audio price.
  copyDetails(metadata, usage)
  return usage
}
