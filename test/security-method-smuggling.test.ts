import t from 'tap'
import { signInWithKey } from './helpers/person.js'
import { startPolicyStack } from './helpers/policy.js'

// A method smuggled past the policy in a percent-encoded colon: the gateway would read
// `models/gemini-3-flash-preview%3AgenerateContent` as a model named with a colon and no method
// (a models.get: no reservation), while an upstream that decodes the path before routing reads a
// generateContent. A path that encodes `:` is refused like one that encodes `/` or `.`.

t.test('method smuggling by an encoded colon: 400, nothing sent upstream, nothing left unmetered', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 1000\n')
  const holder = await signInWithKey(stack)
  for (const colon of ['%3A', '%3a']) {
    const response = await fetch(`${stack.url}/v1beta/models/gemini-3-flash-preview${colon}generateContent`, {
      method: 'POST',
      headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' },
      body: JSON.stringify({ contents: [{ parts: [{ text: 'hello' }] }] }),
    })
    t.equal(response.status, 400, `${colon} refused`)
    t.match(await response.json(), { error: { status: 'INVALID_ARGUMENT', message: /encodes ":"/ } })
  }
  t.equal(stack.gemini.requests.length, 0, 'nothing reached Google')
})
