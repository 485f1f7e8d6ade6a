import t from 'tap'
import { personWithKey } from './helpers/person.js'
import { startPolicyStack } from './helpers/policy.js'

// A model allow-list that only reads the model from the path is bypassed by every call that
// names its model elsewhere: the OpenAI-compatible surface, cached contents, batches.
t.test('a disallowed model named in the body or in an encoded path is refused before it reaches Google', async (t) => {
  const stack = await startPolicyStack(t, "policy:\n  - default: true\n    models: ['gemini-3-flash-preview']\n")
  const holder = await personWithKey(stack)
  const post = async (path: string, body: unknown): Promise<number> => {
    const response = await fetch(`${stack.url}${path}`, {
      method: 'POST', headers: { 'x-goog-api-key': holder.key, authorization: `Bearer ${holder.key}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
    })
    await response.arrayBuffer()
    return response.status
  }
  t.equal(await post('/v1beta/openai/chat/completions', { model: 'gemini-3-pro-preview', messages: [{ role: 'user', content: 'hi' }] }), 403, 'OpenAI-compatible chat')
  t.equal(await post('/v1beta/openai/embeddings', { model: 'models/gemini-embedding-001', input: 'hi' }), 403, 'OpenAI-compatible embeddings')
  t.equal(await post('/v1beta/cachedContents', { model: 'models/gemini-3-pro-preview', contents: [] }), 403, 'a cached content for another model')
  t.equal(await post('/v1beta/models/gemini%2D3-pro-preview:generateContent', { contents: [{ parts: [{ text: 'hi' }] }] }), 403, 'a percent-encoded model name')
  t.equal(await post('/v1beta/models/GEMINI-3-PRO-PREVIEW:generateContent', { contents: [{ parts: [{ text: 'hi' }] }] }), 403, 'another spelling')
  t.same(stack.gemini.requests.map((request) => request.path), [], 'none of them reached Google')
  t.equal(await post('/v1beta/models/gemini-3-flash-preview:generateContent', { contents: [{ parts: [{ text: 'hi' }] }] }), 200, 'the allowed model still works')
})
