import { readFile } from 'node:fs/promises'
import t from 'tap'
import { DEFAULT_MODEL } from '../src/config/models.js'
import { DEFAULT_CHAT_MODEL } from '../demo/example-app.js'

const ROOT = new URL('..', import.meta.url)
/** Files that must name no retired model: what people copy from. */
const COPIED_FROM = ['demo/genai-stream.mjs', 'demo/example-app.ts', 'demo/start.ts', 'demo/main.ts', 'src/auth/status.ts', 'docs/api-surface.md']

t.test('the demo, the snippets and the docs name the one default model, never a retired one', async (t) => {
  t.equal(DEFAULT_CHAT_MODEL, DEFAULT_MODEL, 'the demo app (which runs without src/) mirrors DEFAULT_MODEL')
  t.match(await readFile(new URL('demo/genai-stream.mjs', ROOT), 'utf8'), `'${DEFAULT_MODEL}'`, 'so does the printed script')
  for (const file of COPIED_FROM) {
    const text = await readFile(new URL(file, ROOT), 'utf8')
    t.notMatch(text, /gemini-(1\.\d|2\.0|2\.5)/, `${file} names no retired model`)
  }
})
