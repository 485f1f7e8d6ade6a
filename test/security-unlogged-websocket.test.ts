import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import WebSocket from 'ws'
import { signInWithKey } from './helpers/person.js'
import { startSidecarStack } from './helpers/sidecar.js'

// Issue 12, item 12: a WebSocket session left no access-log line, so whoever used the app over
// a WebSocket, and for how long, was invisible to the operator. Its start and its end are
// logged like any request: person, path, duration, bytes each way.

interface Line { msg: string, [field: string]: unknown }

t.test('a WebSocket session writes a line when it opens and one when it ends', async (t) => {
  const logLines: string[] = []
  const stack = await startSidecarStack(t, { logLines })
  // A key of the person's own in the query: a bad one beside the cookie would refuse the handshake.
  const { browser, key } = await signInWithKey(stack)
  const socket = new WebSocket(`${stack.url.replace(/^http/, 'ws')}/live?room=7&key=${key}`, { headers: { cookie: browser.cookieHeader() }, origin: stack.url })
  await new Promise((resolve, reject) => { socket.once('message', resolve); socket.once('error', reject) })
  const echoed = new Promise((resolve) => socket.once('message', resolve))
  socket.send('x'.repeat(1000))
  await echoed
  socket.close()
  await new Promise((resolve) => socket.once('close', resolve))

  let lines: Line[] = []
  for (let waited = 0; waited < 2_000; waited += 20) {
    lines = logLines.map((line) => JSON.parse(line) as Line).filter((line) => /^websocket/.test(line.msg))
    if (lines.length >= 2) break
    await sleep(20)
  }
  const opened = lines.find((line) => line.msg === 'websocket opened')
  const closed = lines.find((line) => line.msg === 'websocket closed')
  t.match(opened, { person: 'alice@example.com', method: 'GET', status: 101, url: /^\/live\?room=7/ }, 'the start names the person and the path')
  t.match(closed, { person: 'alice@example.com', status: 101, requestId: opened?.requestId, durationMs: Number, reason: String }, 'the end too, with the same request id')
  t.ok(Number(closed?.bytesIn) > 1000 && Number(closed?.bytesOut) > 1000, 'with the bytes each way')
  const text = lines.map((line) => JSON.stringify(line)).join('\n')
  t.notOk(text.includes(key) || text.includes(key.slice(3)), 'a key in the query is redacted')
  t.notMatch(text, new RegExp(browser.cookieHeader().split('=')[1]!.slice(0, 20)), 'no cookie value')
})
