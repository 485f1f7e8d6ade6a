// Streams a Gemini answer through Gemgate with the official @google/genai SDK, unchanged:
// its base URL is the gateway and its API key is a gateway key from the status page.
//   GEMGATE_KEY=gk_... GEMGATE_URL=http://localhost:8080 node demo/genai-stream.mjs 'Hello'
import { ApiError, GoogleGenAI } from '@google/genai'

const baseUrl = process.env.GEMGATE_URL ?? 'http://localhost:8080'
const apiKey = process.env.GEMGATE_KEY

/** Ends with one line on stderr: what went wrong and what to do, never a stack trace. */
function fail (line) {
  process.stderr.write(`genai-stream: ${line}\n`)
  process.exit(1)
}

/** Google's error message from the SDK's "got status: 401 …. {json}" text, else the text. */
function upstreamMessage (text) {
  const json = text.slice(text.indexOf('{'))
  try {
    return JSON.parse(json).error?.message ?? text
  } catch {
    return text
  }
}

function explain (error) {
  if (error instanceof ApiError) {
    const hint = error.status === 401 ? ' (a key ends when it is revoked or its owner signs out: make a new one at /auth/status)' : ''
    return `the gateway answered ${error.status}: ${upstreamMessage(error.message)}${hint}`
  }
  const cause = error?.cause?.code ?? error?.cause?.message
  if (cause !== undefined) return `cannot reach the gateway at ${baseUrl} (${cause}): is it running? (npm run demo)`
  return String(error?.message ?? error).split('\n')[0]
}

if (apiKey === undefined || apiKey === '') {
  fail(`GEMGATE_KEY is not set: create a key at ${baseUrl}/auth/status, then export GEMGATE_KEY=gk_...`)
}

const ai = new GoogleGenAI({ apiKey, httpOptions: { baseUrl } })
try {
  const stream = await ai.models.generateContentStream({
    // DEFAULT_MODEL of src/config/models.ts (a plain script: a test keeps them equal).
    model: process.env.GEMINI_MODEL ?? 'gemini-3.8-flash',
    contents: process.argv[2] ?? 'Hello through Gemgate',
  })
  for await (const chunk of stream) process.stdout.write(chunk.text ?? '')
  process.stdout.write('\n')
} catch (error) {
  fail(explain(error))
}
