import { connect, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { ageTokens, personWithKey, startProxyStack, type ProxyStack } from './helpers/person.js'

const STREAM = '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse'
const BODY = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'a long answer please' }] }] })

/** Sends a POST over a raw socket and returns the socket, to hang up at the moment the test chooses. */
function rawPost (url: string, path: string, key: string): Socket {
  const { hostname, port } = new URL(url)
  const socket = connect({ host: hostname, port: Number(port) })
  socket.write([`POST ${path} HTTP/1.1`, `host: ${hostname}:${port}`, `x-goog-api-key: ${key}`,
    'content-type: application/json', `content-length: ${Buffer.byteLength(BODY)}`, '', BODY].join('\r\n'))
  socket.on('error', () => {})
  return socket
}

async function waitFor (condition: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 500 && !condition(); attempt++) await sleep(10)
}

/** After the refresh finished, the gateway had time to (wrongly) call the upstream: nothing reached it, no socket is left. */
async function nothingUpstream (t: Test, stack: ProxyStack, sub: string, refreshes: number): Promise<void> {
  await waitFor(() => stack.provider.refreshGrantsFor(sub).length >= refreshes)
  t.equal(stack.provider.refreshGrantsFor(sub).length, refreshes, 'the refresh itself completed')
  // Bounded: long enough for a wrong upstream call to show up, never a timing assertion.
  await sleep(300)
  t.equal(stack.gemini.requests.length, 0, 'the upstream was never called for a client that had gone')
  // A call abandoned while its connection was still being made leaves that connection idle in
  // the pool, to be reused: at most one. A call left paused would hold one per client.
  await waitFor(() => stack.gemini.connections <= 1)
  t.ok(stack.gemini.connections <= 1, `no upstream connection is held for a client that left (${stack.gemini.connections} open)`)
}

t.test('a client that hangs up while the gateway refreshes its token: the upstream is never called', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const holder = await personWithKey(stack, { expiresAt: Date.now() - 60_000 })
  const token = stack.provider.holdRefreshes()
  const socket = rawPost(stack.url, STREAM, holder.key)
  await token.reached
  socket.destroy()
  await sleep(50)
  token.release()
  await nothingUpstream(t, stack, holder.sub, 1)
})

t.test('a client that hangs up during the forced refresh after an upstream 401: no retry is sent', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const holder = await personWithKey(stack)
  await ageTokens(stack, holder.personId, 60_000)
  stack.gemini.fault({ kind: 'unauthorized' })
  const token = stack.provider.holdRefreshes()
  const socket = rawPost(stack.url, STREAM, holder.key)
  await token.reached
  t.equal(stack.gemini.requests.length, 1, 'the first attempt was refused with 401')
  stack.gemini.clear()
  socket.destroy()
  await sleep(50)
  token.release()
  await nothingUpstream(t, stack, holder.sub, 1)
})

t.test('many clients that hang up mid-refresh leave no upstream socket behind (no CLOSE-WAIT)', async (t) => {
  const stack = await startProxyStack(t, { memory: true })
  const holder = await personWithKey(stack, { expiresAt: Date.now() - 60_000 })
  const token = stack.provider.holdRefreshes()
  const sockets = Array.from({ length: 20 }, () => rawPost(stack.url, STREAM, holder.key))
  await token.reached
  await sleep(100)
  for (const socket of sockets) socket.destroy()
  await sleep(50)
  token.release()
  await nothingUpstream(t, stack, holder.sub, 1)
  // The person's next call still works: nothing was left half-done.
  const response = await fetch(`${stack.url}${STREAM}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: BODY })
  t.equal(response.status, 200)
  t.match(await response.text(), /usageMetadata/)
})
