import { GoogleGenAI } from '@google/genai'
import t from 'tap'
import { signInWithKey, startProxyStack } from './helpers/person.js'
import { connectSdk, LIVE_MODEL, livePath, rawLive } from './helpers/live.js'

const BOUND_MODEL = 'gemini-3.8-flash-live-bound'

async function mint (gatewayUrl: string, key: string, config: Record<string, unknown>): Promise<{ name: string, expireTime?: string }> {
  const ai = new GoogleGenAI({ apiKey: key, httpOptions: { baseUrl: gatewayUrl, apiVersion: 'v1alpha' } })
  return await ai.authTokens.create({ config }) as { name: string, expireTime?: string }
}

t.test('ai.authTokens.create mints a gateway token; ai.live.connect uses it once, bound to its model', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const record = await stack.app.vault.load(holder.personId)
  const token = await mint(stack.url, holder.key, { uses: 1, liveConnectConstraints: { model: BOUND_MODEL } })
  t.match(token.name, /^auth_tokens\/gt_[\w-]{43}$/, 'a gateway token, never a Google one')
  t.ok(Date.parse(token.expireTime!) - Date.now() > 25 * 60 * 1000, 'about 30 minutes by default')

  const live = await connectSdk(stack.url, token.name, { apiVersion: 'v1alpha', model: LIVE_MODEL })
  live.session.sendClientContent({ turns: 'hi from a browser', turnComplete: true })
  await live.turns(1)
  const upstream = stack.gemini.live.sessions[0]!
  t.equal((upstream.messages[0]?.setup as { model?: string }).model, `models/${BOUND_MODEL}`, 'the token\'s model replaced the client\'s')
  t.equal(upstream.headers.authorization, `Bearer ${record!.accessToken}`, 'the person\'s token went upstream')
  t.same(upstream.query, {}, 'not the ephemeral token')
  t.notOk(JSON.stringify(upstream.headers).includes(token.name.slice(12)))
  live.session.close()

  const again = await rawLive(`${stack.url.replace('http', 'ws')}${livePath('v1alpha', 'BidiGenerateContentConstrained')}?access_token=${token.name}`)
  t.match(await again.closed, { code: 1008, reason: /used up/ }, 'a used-up token is refused with a close reason')
  t.equal(stack.gemini.live.sessions.length, 1, 'the refused session never reached the upstream')
})

t.test('revoked and past-new-session tokens are refused; a token is no credential for REST', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const ws = stack.url.replace('http', 'ws')
  const revoked = await mint(stack.url, holder.key, { uses: 5 })
  const deleted = await fetch(`${stack.url}/v1alpha/${revoked.name}`, { method: 'DELETE', headers: { 'x-goog-api-key': holder.key } })
  t.equal(deleted.status, 204)
  const refused = await rawLive(`${ws}${livePath('v1alpha', 'BidiGenerateContentConstrained')}?access_token=${revoked.name}`)
  t.match(await refused.closed, { code: 1008, reason: /expired or revoked/ })

  const late = await mint(stack.url, holder.key, { newSessionExpireTime: new Date(Date.now() + 300).toISOString() })
  await new Promise((resolve) => setTimeout(resolve, 400))
  const tooLate = await rawLive(`${ws}${livePath()}`, { authorization: `Token ${late.name}` })
  t.match(await tooLate.closed, { code: 1008, reason: /no longer start new sessions/ })

  const rest = await fetch(`${stack.url}/v1beta/models`, { headers: { authorization: `Token ${late.name}` } })
  t.equal(rest.status, 401)
  t.match(await rest.json(), { error: { status: 'UNAUTHENTICATED', message: /Live API sessions only/ } })
  const unsigned = await fetch(`${stack.url}/v1alpha/auth_tokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  t.equal(unsigned.status, 401, 'minting needs a key or session')
  const redis = stack.redis!.client()
  const stored = await Promise.all((await redis.keys('*ephemeral:*')).map(async (key) => [key, await redis.type(key) === 'string' ? await redis.get(key) : ''] as const))
  t.ok(stored.length > 0)
  t.notOk(JSON.stringify(stored).includes(late.name.slice(15)), 'stored only as a hash')
})
