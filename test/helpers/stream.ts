import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'

/** How long a test waits for a connection that should end to end. */
export const CLOSE_WITHIN_MS = 5_000
/** A streamed generateContent, as the SDK asks for it. */
export const STREAM = '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse'
const PROMPT = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'tell me a long story' }] }] })

/** Starts a streamed answer and reads its first event; resolves how the rest of it ended. */
export async function openStream (t: Test, url: string, headers: Record<string, string>): Promise<{ rest: Promise<'complete' | 'cut' | 'still open'> }> {
  const abort = new AbortController()
  t.teardown(() => { abort.abort() })
  const response = await fetch(`${url}${STREAM}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: PROMPT, signal: abort.signal })
  if (response.status !== 200) throw new Error(`the stream answered ${response.status}: ${await response.text()}`)
  const reader = response.body!.getReader()
  await reader.read()
  const rest = (async () => {
    try {
      while (!(await reader.read()).done) { /* drain */ }
      return 'complete' as const
    } catch {
      return 'cut' as const
    }
  })()
  return { rest: Promise.race([rest, sleep(CLOSE_WITHIN_MS).then(() => 'still open' as const)]) }
}
