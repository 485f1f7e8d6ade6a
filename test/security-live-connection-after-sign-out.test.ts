import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import WebSocket from 'ws'
import { keyHeaders, signInWithKey } from './helpers/person.js'
import { sameBrowserAt, startSidecarStack } from './helpers/sidecar.js'
import type { Browser } from './helpers/stack.js'
import { CLOSE_WITHIN_MS, openStream } from './helpers/stream.js'

// Issue 12, "also decide": a sign-out (or a revoked key) that leaves an open WebSocket or a
// streamed answer running is not a sign-out. Every long-lived connection is re-checked when
// something about its person changes, on whichever replica it is held, and ended if its
// credential no longer holds.

/** Opens a WebSocket to the app as a page of the gateway's origin; resolves once the app said hello. */
async function openAppSocket (url: string, browser: Browser, origin = url): Promise<WebSocket> {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/live`, { headers: { cookie: browser.cookieHeader() }, origin })
  await new Promise((resolve, reject) => { socket.once('message', resolve); socket.once('error', reject) })
  return socket
}

/** Resolves true when the socket closes within the bound, false otherwise. */
async function closesSoon (socket: WebSocket): Promise<boolean> {
  if (socket.readyState === WebSocket.CLOSED) return true
  return await Promise.race([new Promise<boolean>((resolve) => socket.once('close', () => resolve(true))), sleep(CLOSE_WITHIN_MS).then(() => false)])
}

t.test('signing out ends the person\'s open app WebSockets and streamed answers, on every replica', async (t) => {
  const stack = await startSidecarStack(t, { env: { SHUTDOWN_DRAIN_SECONDS: '1' } })
  const replica = await stack.replica()
  const { browser } = await stack.signIn()
  const here = await openAppSocket(stack.url, browser)
  const there = await openAppSocket(replica.url, sameBrowserAt(browser, replica.url), stack.url)
  t.teardown(() => { here.terminate(); there.terminate() })
  stack.provider.addUser({ sub: 'bob', email: 'bob@example.com', name: 'Bob' })
  const bob = await stack.signIn({ user: 'bob' })
  const bystander = await openAppSocket(stack.url, bob.browser)
  t.teardown(() => bystander.terminate())
  // The fake Gemini sends one event, then holds the stream open.
  stack.gemini.fault({ kind: 'hang', afterChunks: 1 })
  const stream = await openStream(t, stack.url, { cookie: browser.cookieHeader(), origin: stack.url })
  t.equal(stack.app.liveConnections.size, 3, 'the sockets and the stream are tracked here')

  const logout = await browser.fetch('/auth/logout', { method: 'POST', headers: { origin: stack.url } })
  t.equal(logout.status, 204)
  t.ok(await closesSoon(here), 'the WebSocket on this replica closed')
  t.ok(await closesSoon(there), 'the WebSocket on the other replica closed')
  t.equal(await stream.rest, 'cut', 'the streamed answer was cut off, not completed')
  t.equal(bystander.readyState, WebSocket.OPEN, 'another person\'s WebSocket stays open')
  t.equal(stack.app.liveConnections.size, 1)
})

t.test('revoking a key ends the streams it opened; a token refresh ends nothing', async (t) => {
  const stack = await startSidecarStack(t, { env: { SHUTDOWN_DRAIN_SECONDS: '1' } })
  const holder = await signInWithKey(stack)
  const socket = await openAppSocket(stack.url, holder.browser)
  t.teardown(() => socket.terminate())
  stack.gemini.fault({ kind: 'hang', afterChunks: 1 }, { times: 2 })
  const byKey = await openStream(t, stack.url, keyHeaders(holder))
  const bySession = await openStream(t, stack.url, { cookie: holder.browser.cookieHeader(), origin: stack.url })

  // Something changed about the person that leaves every credential valid: nothing ends.
  await stack.app.personChanges.announce(holder.personId)
  await sleep(200)
  t.equal(stack.app.liveConnections.size, 3, 'an announcement alone ends nothing that is still valid')

  const revoke = await holder.browser.fetch(`/auth/keys/${holder.keyId}`, { method: 'DELETE', headers: { origin: stack.url } })
  t.equal(revoke.status, 204)
  t.equal(await byKey.rest, 'cut', 'the stream opened with the revoked key was cut off')
  t.equal(socket.readyState, WebSocket.OPEN, 'the session\'s WebSocket stays open')
  t.equal(stack.app.liveConnections.size, 2, 'the session\'s stream stays open')
  void bySession
})

t.test('revoking a key ends an OpenAI-compatible stream it opened', async (t) => {
  // Two words three seconds apart: the answer is still streaming when the key is revoked.
  const stack = await startSidecarStack(t, { gemini: { chunkDelayMs: 3_000 } })
  const holder = await signInWithKey(stack)
  const abort = new AbortController()
  t.teardown(() => { abort.abort() })
  const response = await fetch(`${stack.url}/v1beta/openai/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${holder.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gemini-3.8-flash', stream: true, messages: [{ role: 'user', content: 'hello' }] }),
    signal: abort.signal,
  })
  t.equal(response.status, 200)
  const reader = response.body!.getReader()
  await reader.read()
  const rest = (async () => {
    try {
      while (!(await reader.read()).done) { /* drain */ }
      return 'complete'
    } catch {
      return 'cut'
    }
  })()
  t.equal((await holder.browser.fetch(`/auth/keys/${holder.keyId}`, { method: 'DELETE', headers: { origin: stack.url } })).status, 204)
  t.equal(await Promise.race([rest, sleep(CLOSE_WITHIN_MS).then(() => 'still open')]), 'cut', 'the stream was cut off')
})
