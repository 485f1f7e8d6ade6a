import t from 'tap'
import { connectSdk, LIVE_MODEL, livePath, rawLive } from './helpers/live.js'
import { signInWithKey } from './helpers/person.js'
import { eventually, startPolicyStack } from './helpers/policy.js'

// Issue 15: a Live session is held to the same policy as REST calls: the model in its `setup`
// must be allowed, its turns are charged to the person's budgets, and a spent budget ends it.

const POLICY = `policy:
  - default: true
    models: ['gemini-*-live']
    tokens_per_day: 20
`

t.test('a Live setup naming a model the policy does not allow is closed before it reaches Google', async (t) => {
  const stack = await startPolicyStack(t, POLICY)
  const holder = await signInWithKey(stack)
  const { socket, opened, closed } = await rawLive(`${stack.url.replace('http', 'ws')}${livePath()}?key=${holder.key}`)
  t.equal(await opened, 101)
  socket.send(JSON.stringify({ setup: { model: 'models/gemini-3-pro-preview' } }))
  const { code, reason } = await closed
  t.equal(code, 1008, 'closed as a policy violation')
  t.match(reason, /gemini-3-pro-preview is not allowed/, 'with a reason that names the model')
  t.notOk(stack.gemini.live.sessions.some((session) => session.messages.length > 0), 'no setup reached the upstream')
})

t.test('Live turns are charged to the budget; the turn that spends it ends the session, and a new one is refused', async (t) => {
  const stack = await startPolicyStack(t, POLICY)
  const holder = await signInWithKey(stack)
  const live = await connectSdk(stack.url, holder.key, { model: LIVE_MODEL })
  // The fake answers a text turn with 3 prompt + 24 answer tokens: more than the day's 20.
  live.session.sendClientContent({ turns: 'hello live world', turnComplete: true })
  const { code, reason } = await live.closed
  t.equal(code, 1008)
  t.match(reason, /tokens per day budget is used up/, 'the close reason names the budget')
  const me = await (await holder.browser.fetch('/auth/me')).json() as { limits: Array<{ name: string, used: number }> }
  t.equal(me.limits.find((limit) => limit.name === 'tokens_per_day')?.used, 27, 'the turn was charged in full')

  const again = await rawLive(`${stack.url.replace('http', 'ws')}${livePath()}?key=${holder.key}`)
  t.equal(await again.opened, 429, 'the next session is refused at the handshake')
})

t.test('a Live session counts as one request against requests_per_minute, refused at the handshake; its turns add none', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    requests_per_minute: 2\n')
  const holder = await signInWithKey(stack)
  const first = await connectSdk(stack.url, holder.key, { model: LIVE_MODEL })
  first.session.sendClientContent({ turns: 'one', turnComplete: true })
  first.session.sendClientContent({ turns: 'two', turnComplete: true })
  await first.turns(2)
  const me = await (await holder.browser.fetch('/auth/me')).json() as { limits: Array<{ name: string, used: number }> }
  t.ok(me.limits.find((limit) => limit.name === 'requests_per_minute')!.used <= 1, 'two turns, and still one request')
  const second = await connectSdk(stack.url, holder.key, { model: LIVE_MODEL })
  const upstreamSessions = stack.gemini.live.sessions.length

  const third = await rawLive(`${stack.url.replace('http', 'ws')}${livePath()}?key=${holder.key}`)
  t.equal(await third.opened, 429, 'the third session of the minute is refused at the handshake')
  t.equal(stack.gemini.live.sessions.length, upstreamSessions, 'it never reached Google')
  first.session.close()
  second.session.close()
})

t.test('allow-list escape by a duplicate key in a Live setup: the setup reaches Google only as the gateway read it', async (t) => {
  // JSON.parse keeps the last of two equal keys; Google's parser may keep the first.
  const stack = await startPolicyStack(t, POLICY)
  const holder = await signInWithKey(stack)
  const setups = [
    '{"setup":{"model":"models/gemini-3-pro-preview"},"setup":{"model":"models/gemini-3.8-flash-live"}}',
    '{"setup":{"model":"models/gemini-3-pro-preview","model":"models/gemini-3.8-flash-live"}}',
  ]
  for (const setup of setups) {
    const { socket, opened, frames } = await rawLive(`${stack.url.replace('http', 'ws')}${livePath()}?key=${holder.key}`)
    t.equal(await opened, 101)
    socket.send(setup)
    await eventually(async () => frames.length, (count) => count > 0)
    const sent = stack.gemini.live.sessions.at(-1)!.raw[0]!
    t.same(JSON.parse(sent), { setup: { model: 'models/gemini-3.8-flash-live' } }, 'the model the allow-list passed')
    t.equal(sent.match(/"(?:setup|model)"/g)?.length, 2, `each key once: ${sent}`)
    socket.close()
  }
})

t.test('search grounding in a Live session under a dollar limit: billed per query, outside the usage Google reports, so the setup is refused', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    usd_per_day: 5\n')
  const holder = await signInWithKey(stack)
  const { socket, opened, closed } = await rawLive(`${stack.url.replace('http', 'ws')}${livePath()}?key=${holder.key}`)
  t.equal(await opened, 101)
  socket.send(JSON.stringify({ setup: { model: `models/${LIVE_MODEL}`, tools: [{ codeExecution: {} }, { google_search: {} }] } }))
  const { code, reason } = await closed
  t.equal(code, 1008)
  t.match(reason, /google_search/)
  t.notOk(stack.gemini.live.sessions.some((session) => session.messages.length > 0), 'no setup reached the upstream')
})

t.test('budget escape by hanging up a Live session mid-turn: the gateway stays for the turn\'s usage and charges what Google billed', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 100000\n')
  const holder = await signInWithKey(stack)
  // Google takes a while to answer; the client sends a turn and leaves at once, every time.
  stack.gemini.live.answerDelayMs = 300
  const used = async (): Promise<number> => ((await (await holder.browser.fetch('/auth/me')).json()) as { limits: Array<{ name: string, used: number }> })
    .limits.find((limit) => limit.name === 'tokens_per_day')!.used
  for (let session = 0; session < 3; session++) {
    const { socket, opened, closed } = await rawLive(`${stack.url.replace('http', 'ws')}${livePath()}?key=${holder.key}`)
    t.equal(await opened, 101)
    socket.send(JSON.stringify({ setup: { model: `models/${LIVE_MODEL}` } }))
    await new Promise((resolve) => socket.once('message', resolve))
    socket.send(JSON.stringify({ clientContent: { turns: [{ role: 'user', parts: [{ text: 'fox '.repeat(500) }] }], turnComplete: true } }))
    socket.close(1000, 'bye')
    await closed
  }
  const billed = (): number => stack.gemini.live.sessions.reduce((sum, session) => sum + session.billedTokens, 0)
  t.ok(billed() > 3_000, `Google billed three whole turns (${billed()} tokens)`)
  t.equal(await eventually(used, (value) => value === billed()), billed(), 'each turn charged as Google billed it')
  const upstreamClosed = await Promise.all(stack.gemini.live.sessions.map(async (session) => await stack.gemini.live.closedOf(session)))
  t.same(upstreamClosed.map(({ code }) => code), [1000, 1000, 1000], 'each upstream session closed once its turn was over, with the client\'s code')
})

t.test('a Live turn whose usage never comes is waited for at most UPSTREAM_TIMEOUT_SECONDS after its client left', async (t) => {
  const stack = await startPolicyStack(t, 'policy:\n  - default: true\n    tokens_per_day: 100000\n', { env: { UPSTREAM_TIMEOUT_SECONDS: '1' } })
  const holder = await signInWithKey(stack)
  stack.gemini.live.answerDelayMs = 30_000
  const { socket, opened } = await rawLive(`${stack.url.replace('http', 'ws')}${livePath()}?key=${holder.key}`)
  t.equal(await opened, 101)
  const setup = stack.gemini.live.nextSetup()
  socket.send(JSON.stringify({ setup: { model: `models/${LIVE_MODEL}` } }))
  const upstream = await setup
  socket.send(JSON.stringify({ clientContent: { turns: [{ role: 'user', parts: [{ text: 'hello' }] }], turnComplete: true } }))
  socket.close(1000, 'bye')
  t.same(await stack.gemini.live.closedOf(upstream), { code: 1000, reason: 'bye' }, 'closed with the client\'s code once the wait ran out')
})

t.test('budget outrun by audio at the text price in a Live session: a turn\'s audio is charged at the audio price Google bills', async (t) => {
  const stack = await startPolicyStack(t, `prices:
  ${LIVE_MODEL}: { from: '2026-01-01', input: 1, output: 2, audio_input: 4 }
policy:
  - default: true
    usd_per_day: 100
`)
  const holder = await signInWithKey(stack)
  const live = await connectSdk(stack.url, holder.key, { model: LIVE_MODEL })
  // 3,200 bytes of PCM: 4,268 base64 characters, 1,067 audio tokens to the fake; its answer is 11 tokens ("Echo: " and an audio chunk).
  live.session.sendRealtimeInput({ audio: { data: Buffer.alloc(3200).toString('base64'), mimeType: 'audio/pcm;rate=16000' } })
  const me = async (): Promise<number> => ((await (await holder.browser.fetch('/auth/me')).json()) as { policy: { today: { usd: number } } }).policy.today.usd
  const usd = await eventually(me, (spent) => spent > 0)
  t.equal(usd, 0.00429, 'charged 1,067 audio tokens at $4/1M and 11 output tokens at $2/1M (at the text price: $0.001089)')
  live.session.close()
})
