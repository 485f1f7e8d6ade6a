import t from 'tap'
import { signInWithKey } from './helpers/person.js'
import { startPolicyStack } from './helpers/policy.js'

// Issue 14: "a call to another model gets 403", and reservations priced by the model asked for.
// JSON.parse keeps the last of two equal keys; Google's parser may keep the first. A body that
// names its model twice could pass the allow-list (and be priced) by one model and be served by
// the other. Every body the gateway reads to decide on a call goes to Google as the gateway read
// it, each key once. (The Gemini body's own fields: test/security-policy-tool-outrun.test.ts;
// a Live setup's: test/live-policy.test.ts.)

const POLICY = "policy:\n  - default: true\n    models: ['gemini-3-flash*', 'gemini-embedding-*']\n"
const TWICE = '"model":"gemini-3-pro-preview","model":"gemini-3-flash-preview"'

async function post (url: string, key: string, path: string, raw: string): Promise<Response> {
  return await fetch(`${url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: raw })
}

/** The body Google was last sent, as it arrived. */
const lastSent = (stack: { gemini: { requests: Array<{ rawBody: Buffer }> } }): string => stack.gemini.requests.at(-1)!.rawBody.toString('utf8')

t.test('allow-list escape by a duplicate model key: every body whose model the gateway checks reaches Google with the model it checked, once', async (t) => {
  for (const yaml of [POLICY, `${POLICY}    usd_per_day: 50\n`]) {
    const stack = await startPolicyStack(t, yaml)
    const holder = await signInWithKey(stack)
    const calls: Array<[string, string]> = [
      ['/v1beta/openai/chat/completions', `{${TWICE},"messages":[{"role":"user","content":"hi"}]}`],
      ['/v1beta/openai/chat/completions', `{${TWICE},"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`],
      ['/v1beta/cachedContents', `{${TWICE.replaceAll('gemini-', 'models/gemini-')},"contents":[{"parts":[{"text":"a long document"}]}]}`],
    ]
    for (const [path, raw] of calls) {
      const response = await post(stack.url, holder.key, path, raw)
      await response.text()
      if (response.status === 403) {
        t.match(path, /cachedContents/, `${path}: unpriced under a dollar limit, refused before Google`)
        continue
      }
      const sent = lastSent(stack)
      t.equal(sent.match(/"model"/g)?.length, 1, `${path} (${yaml.includes('usd') ? 'with' : 'without'} a budget): one model sent: ${sent.slice(0, 90)}`)
      t.match(JSON.parse(sent), { model: /gemini-3-flash-preview$/ }, 'the one the allow-list passed')
    }
  }
})

t.test('a body the gateway reads for its model, sent once as read, loses nothing else', async (t) => {
  const stack = await startPolicyStack(t, POLICY)
  const holder = await signInWithKey(stack)
  const raw = '{"model":"gemini-3-flash-preview","messages":[{"role":"user","content":"caf\\u00e9"}],"temperature":0.5,"n":1,"user":"u-1"}'
  const response = await post(stack.url, holder.key, '/v1beta/openai/chat/completions', raw)
  t.equal(response.status, 200)
  await response.text()
  t.same(JSON.parse(lastSent(stack)), JSON.parse(raw))
})
