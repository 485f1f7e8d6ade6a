import t from 'tap'
import { FAKE_AUDIO } from './fixtures/gemini-live.js'
import { modelUsage as usageOf, signInWithKey, startProxyStack } from './helpers/person.js'
import { connectSdk, LIVE_MODEL, livePath, rawLive } from './helpers/live.js'

t.test('ai.live.connect through the gateway with a gateway key: text and binary turns, usage, closes relayed', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const record = await stack.app.vault.load(holder.personId)
  const live = await connectSdk(stack.url, holder.key)

  live.session.sendClientContent({ turns: 'hello live world', turnComplete: true })
  await live.turns(1)
  const parts = live.messages.flatMap((message) => message.serverContent?.modelTurn?.parts ?? [])
  t.equal(parts[0]?.text, 'Echo: hello live world', 'the text frame came through')
  const audio = parts.filter((part) => part.inlineData !== undefined)
  t.equal(audio.length, 2, 'both binary audio frames came through')
  t.same(Buffer.from(audio[0]!.inlineData!.data!, 'base64'), FAKE_AUDIO, 'byte for byte')

  live.session.sendRealtimeInput({ audio: { data: Buffer.alloc(3200).toString('base64'), mimeType: 'audio/pcm;rate=16000' } })
  await live.turns(2)

  const upstream = stack.gemini.live.sessions[0]!
  t.equal(upstream.path, livePath('v1'), 'the JS SDK\'s //ws path (its default version) reached the upstream as /ws')
  t.equal(upstream.headers.authorization, `Bearer ${record!.accessToken}`, 'the person\'s token, injected')
  t.equal(upstream.sub, holder.sub)
  t.same(upstream.query, {}, 'no key in the upstream query')
  t.equal(upstream.apiKey, undefined)
  t.notOk(JSON.stringify(upstream.headers).includes(holder.key), 'the gateway key never went upstream')
  t.equal((upstream.messages[0]?.setup as { model?: string }).model, `models/${LIVE_MODEL}`, 'setup passed unchanged')

  const usage = await usageOf(holder.browser, LIVE_MODEL, 2)
  t.equal(usage?.requests, 2, 'each turn counted')
  t.equal(usage?.prompt, 3 + 1067, 'prompt tokens of both turns (the audio turn: a token per four base64 characters)')
  t.equal(usage?.candidates, (4 + 20) + (1 + 10), 'responseTokenCount counted as answer tokens')

  upstream.close(4000, 'upstream says goodbye')
  t.same(await live.closed, { code: 4000, reason: 'upstream says goodbye' }, 'the upstream\'s close code and reason reach the client')
  for (let wait = 0; wait < 100 && stack.app.liveConnections.size > 0; wait++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(stack.app.liveConnections.size, 0, 'the session is no longer tracked')
})

t.test('a client that closes closes the upstream with its code and reason', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const { socket, opened } = await rawLive(`${stack.url.replace('http', 'ws')}${livePath()}?key=${holder.key}`)
  t.equal(await opened, 101)
  socket.send(JSON.stringify({ setup: { model: `models/${LIVE_MODEL}` } }))
  const upstream = await stack.gemini.live.nextSetup()
  socket.close(4321, 'client done')
  t.same(await stack.gemini.live.closedOf(upstream), { code: 4321, reason: 'client done' })
})

t.test('every credential the SDKs send opens a session; none reaches the upstream', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await signInWithKey(stack)
  const ws = stack.url.replace('http', 'ws')
  const variants: Array<[string, string, Record<string, string>]> = [
    ['?key= (JS SDK), doubled slash', `${ws}/${livePath('v1alpha')}?key=${holder.key}`, {}],
    ['x-goog-api-key (Python SDK)', `${ws}${livePath('v1')}`, { 'x-goog-api-key': holder.key }],
    ['Authorization: Bearer', `${ws}${livePath()}`, { authorization: `Bearer ${holder.key}` }],
  ]
  for (const [name, url, headers] of variants) {
    const { socket, frames, opened } = await rawLive(url, headers)
    t.equal(await opened, 101, name)
    socket.send(JSON.stringify({ setup: { model: `models/${LIVE_MODEL}` } }))
    const upstream = await stack.gemini.live.nextSetup()
    while (frames.length === 0) await new Promise((resolve) => setTimeout(resolve, 5))
    t.same(JSON.parse(frames[0]!.data), { setupComplete: {} }, `${name}: setupComplete relayed`)
    t.equal(frames[0]!.binary, true, `${name}: a binary frame stays binary`)
    t.equal(upstream.sub, holder.sub, `${name}: upstream saw the person`)
    t.notOk(JSON.stringify([upstream.headers, upstream.query]).includes(holder.key), `${name}: not the key`)
    socket.close()
  }
})

t.test('no credential, a bad key, a bad first message: closed with 1008/1007 and a reason, the upstream never asked', async (t) => {
  const stack = await startProxyStack(t)
  const ws = stack.url.replace('http', 'ws')
  const none = await rawLive(`${ws}${livePath()}`)
  t.equal(await none.opened, 101)
  const noneClosed = await none.closed
  t.equal(noneClosed.code, 1008)
  t.match(noneClosed.reason, /Not signed in/)
  const bad = await rawLive(`${ws}${livePath()}?key=gk_${'x'.repeat(43)}`)
  t.match(await bad.closed, { code: 1008, reason: /unknown, expired or revoked/ })
  t.equal(stack.gemini.live.sessions.length, 0, 'nothing reached the upstream')

  const holder = await signInWithKey(stack)
  const garbled = await rawLive(`${ws}${livePath()}?key=${holder.key}`)
  await garbled.opened
  garbled.socket.send('not json')
  t.match(await garbled.closed, { code: 1007, reason: /setup message/ })

  const plain = await fetch(`${stack.url}${livePath()}`, { headers: { 'x-goog-api-key': holder.key } })
  t.equal(plain.status, 400, 'a plain GET is told to upgrade')
  t.match(await plain.json(), { error: { code: 400, status: 'INVALID_ARGUMENT' } })
  const unknown = await rawLive(`${ws}/ws/google.ai.generativelanguage.v1beta.GenerativeService.Nothing?key=${holder.key}`)
  t.equal(await unknown.opened, 400)
})

t.test('UPSTREAM_API_KEY for the live surface: the key goes upstream, identity and usage stay per person', async (t) => {
  const stack = await startProxyStack(t, { gemini: { validApiKeys: ['AIza-operator-key'] }, env: { UPSTREAM_API_KEY: 'AIza-operator-key', UPSTREAM_API_KEY_SURFACES: 'live' } })
  const holder = await signInWithKey(stack)
  const live = await connectSdk(stack.url, holder.key)
  live.session.sendClientContent({ turns: 'billed to the project', turnComplete: true })
  await live.turns(1)
  const upstream = stack.gemini.live.sessions[0]!
  t.equal(upstream.headers['x-goog-api-key'], 'AIza-operator-key')
  t.equal(upstream.headers.authorization, undefined, 'no person token alongside')
  t.equal((await usageOf(holder.browser, LIVE_MODEL, 1))?.requests, 1, 'usage still counted for the person')
  live.session.close()
})
