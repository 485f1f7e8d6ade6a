// Streams a Gemini answer through Gemgate with the official @google/genai SDK, unchanged:
// its base URL is the gateway and its API key is a gateway key from the status page.
//   GEMGATE_KEY=gk_... GEMGATE_URL=http://localhost:8080 node demo/genai-stream.mjs 'Hello'
import { GoogleGenAI } from '@google/genai'

const ai = new GoogleGenAI({
  apiKey: process.env.GEMGATE_KEY,
  httpOptions: { baseUrl: process.env.GEMGATE_URL ?? 'http://localhost:8080' },
})
const stream = await ai.models.generateContentStream({
  // DEFAULT_MODEL of src/config/models.ts (a plain script: a test keeps them equal).
  model: process.env.GEMINI_MODEL ?? 'gemini-3.8-flash',
  contents: process.argv[2] ?? 'Hello through Gemgate',
})
for await (const chunk of stream) process.stdout.write(chunk.text ?? '')
process.stdout.write('\n')
