import { GoogleGenAI } from '@google/genai'
import t from 'tap'
import { keyHeaders, signInWithKey, startProxyStack } from './helpers/person.js'
import { startPolicyStack } from './helpers/policy.js'

const POLICY = `
policy:
  - name: ml-team
    match: { groups: [ml] }
    models: ['gemini-3-*']
    requests_per_minute: 100
  - name: partners
    match: { domains: [partner.example] }
    models: ['gemini-3-flash*']
    requests_per_minute: 3
  - name: boss
    match: { emails: [Carol@Example.com] }
  - default: true
    models: [gemini-2.5-flash, gemini-3-flash-preview]
    requests_per_minute: 2
`

interface Me { policy: { rule: string | null, models: string[] | null }, limits: Array<{ name: string, scope: string, limit: number, used: number, remaining: number, resetsAt: string }> }

t.test('rules match by email, domain (and Google\'s hd), group; everyone else gets the default', async (t) => {
  const stack = await startPolicyStack(t, POLICY, { env: { ALLOWED_EMAIL_DOMAINS: 'example.com,partner.example' } })
  stack.provider.addUser({ sub: 'bob', email: 'bob@example.com', groups: ['staff', 'ml'] })
  stack.provider.addUser({ sub: 'carol', email: 'carol@example.com', groups: ['ml'] })
  stack.provider.addUser({ sub: 'dave', email: 'dave@partner.example' })
  stack.provider.addUser({ sub: 'erin', email: 'erin@example.com', hd: 'partner.example' })
  const expected: Record<string, string> = { alice: 'default', bob: 'ml-team', carol: 'ml-team', dave: 'partners', erin: 'partners' }
  for (const [user, rule] of Object.entries(expected)) {
    const { browser } = await stack.signIn({ user })
    const me = await (await browser.fetch('/auth/me')).json() as Me
    t.equal(me.policy.rule, rule, `${user} gets ${rule}`)
  }
  t.comment('carol is named by email, but the ml-team rule comes first: rules are ordered')
})

t.test('a disallowed model is refused with 403 and missing from models.list', async (t) => {
  const stack = await startPolicyStack(t, POLICY)
  const holder = await signInWithKey(stack)
  const ai = new GoogleGenAI({ apiKey: holder.key, httpOptions: { baseUrl: stack.url } })
  const error = await ai.models.generateContent({ model: 'gemini-2.5-pro', contents: 'hi' }).catch((caught: unknown) => caught as { status?: number, message?: string })
  t.equal((error as { status?: number }).status, 403)
  t.match((error as { message?: string }).message, /PERMISSION_DENIED/)
  t.match((error as { message?: string }).message, /gemini-2\.5-pro is not allowed/)
  const raw = await fetch(`${stack.url}/v1beta/models/gemini-2.5-pro:countTokens`, { method: 'POST', headers: { ...keyHeaders(holder), 'content-type': 'application/json' }, body: '{"contents":[]}' })
  t.equal(raw.status, 403, 'every call on the model, countTokens too')
  t.equal(stack.gemini.requests.filter((request) => request.path.includes('2.5-pro')).length, 0, 'nothing reached Google')
  const names: string[] = []
  for await (const model of await ai.models.list()) names.push(model.name ?? '')
  t.same(names, ['models/gemini-2.5-flash'], 'models.list shows only the allowed models the upstream has')
  const get = await fetch(`${stack.url}/v1beta/models/gemini-2.0-flash`, { headers: keyHeaders(holder) })
  t.equal(get.status, 403, 'models.get of a disallowed model')
  const allowed = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hi there' })
  t.equal(allowed.text, 'Echo: hi there')
})

t.test('a key narrower than its owner: its own models and limits; never wider', async (t) => {
  const stack = await startPolicyStack(t, POLICY)
  const holder = await signInWithKey(stack)
  const create = async (limits: unknown): Promise<Response> => await holder.browser.fetch('/auth/keys', {
    method: 'POST',
    headers: { origin: stack.url, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'narrow', limits }),
  })
  const wider = await create({ requests_per_minute: 5 })
  t.equal(wider.status, 400, 'a rate above the owner\'s is refused')
  t.match(await wider.text(), /requests_per_minute 5 is above your own 2/)
  const otherModel = await create({ models: ['gemini-2.5-pro'] })
  t.equal(otherModel.status, 400, 'a model the owner may not use is refused')
  t.equal((await create({ tokens_per_dya: 5 })).status, 400, 'an unknown limit is refused')

  const narrow = await create({ requests_per_minute: 1, models: ['gemini-3-flash-preview'] })
  t.equal(narrow.status, 201)
  const key = (await narrow.json() as { key: string }).key
  const call = async (model: string): Promise<Response> => await fetch(`${stack.url}/v1beta/models/${model}:generateContent`, {
    method: 'POST', headers: { 'x-goog-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify({ contents: [{ parts: [{ text: 'hello' }] }] }),
  })
  t.equal((await call('gemini-2.5-flash')).status, 403, 'the owner may use it, the key may not')
  const first = await call('gemini-3-flash-preview')
  t.equal(first.status, 200)
  t.equal(first.headers.get('x-ratelimit-limit-requests'), '1', 'the tightest request limit: the key\'s')
  t.equal(first.headers.get('x-ratelimit-remaining-requests'), '0')
  const second = await call('gemini-3-flash-preview')
  t.equal(second.status, 429, 'the key\'s own rate')
  const body = await second.json() as { error: { details: Array<Record<string, unknown>> } }
  t.match(body.error.details[0], { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ subject: 'key', quotaId: 'requests_per_minute-per-key' }] })
  const me = await (await fetch(`${stack.url}/auth/me`, { headers: { 'x-goog-api-key': key } })).json() as Me
  t.same(me.limits.map((limit) => `${limit.scope}:${limit.name}:${limit.limit}`), ['person:requests_per_minute:2', 'key:requests_per_minute:1'], '/auth/me shows both')
})

t.test('allow-list escape by models.list: a key\'s own models filter the list on a gateway with no policy rule too', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const created = await holder.browser.fetch('/auth/keys', {
    method: 'POST',
    headers: { origin: stack.url, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'flash only', limits: { models: ['gemini-2.5-flash'] } }),
  })
  t.equal(created.status, 201)
  const ai = new GoogleGenAI({ apiKey: (await created.json() as { key: string }).key, httpOptions: { baseUrl: stack.url } })
  const names: string[] = []
  for await (const model of await ai.models.list()) names.push(model.name ?? '')
  t.same(names, ['models/gemini-2.5-flash'], 'only the key\'s model')
})
