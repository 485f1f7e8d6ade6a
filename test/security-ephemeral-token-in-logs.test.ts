import t from 'tap'
import { livePath, rawLive } from './helpers/live.js'
import { signInWithKey, startProxyStack } from './helpers/person.js'

t.test('an ephemeral token in the Live URL (?access_token=, as the JS SDK sends it) never reaches the logs', async (t) => {
  const logLines: string[] = []
  const stack = await startProxyStack(t, { logLines })
  const holder = await signInWithKey(stack)
  const minted = await (await fetch(`${stack.url}/v1alpha/auth_tokens`, { method: 'POST', headers: { 'x-goog-api-key': holder.key, 'content-type': 'application/json' }, body: '{"uses":2}' })).json() as { name: string }
  const ws = stack.url.replace('http', 'ws')
  const live = await rawLive(`${ws}${livePath('v1alpha', 'BidiGenerateContentConstrained')}?access_token=${minted.name}`)
  t.equal(await live.opened, 101)
  live.socket.close()
  await live.closed
  // A plain GET on the same URL is answered (400) and logged like any request.
  await fetch(`${stack.url}${livePath()}?access_token=${minted.name}`)
  await fetch(`${stack.url}/v1beta/models?access_token=${minted.name}`)
  const secret = minted.name.slice('auth_tokens/'.length)
  t.ok(logLines.some((line) => line.includes('access_token=[redacted]')), 'the access lines are there, redacted')
  t.notOk(logLines.some((line) => line.includes(secret)), 'no line holds the token')
})
