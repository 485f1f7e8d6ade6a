import t, { type Test } from 'tap'
import { selfSignedCert } from './fixtures/gemini.js'
import { personWithKey, startProxyStack, type ProxyStack } from './helpers/person.js'

const STREAM = '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse'
const GENERATE = '/v1beta/models/gemini-2.5-flash:generateContent'
const BODY = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hello' }] }] })

/** A gateway in front of a TLS fake Gemini (HTTP/2 offered or not), its certificate trusted through UPSTREAM_CA_FILE. */
async function tlsUpstream (t: Test, http2: boolean, env: Record<string, string> = {}): Promise<ProxyStack> {
  const cert = await selfSignedCert(t)
  return await startProxyStack(t, { memory: true, gemini: { tls: { key: cert.key, cert: cert.cert }, http2 }, env: { UPSTREAM_CA_FILE: cert.certPath, ...env } })
}

t.test('an upstream that offers HTTP/2 is spoken to over HTTP/2, its certificate verified', async (t) => {
  const stack = await tlsUpstream(t, true)
  t.match(stack.gemini.url, /^https:/)
  const holder = await personWithKey(stack)
  const response = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: BODY })
  t.equal(response.status, 200)
  t.equal(stack.gemini.requests[0]?.httpVersion, '2.0')
  t.equal(stack.gemini.requests[0]?.sub, holder.sub, 'with the person\'s token')
})

t.test('many concurrent streams share a handful of HTTP/2 connections', async (t) => {
  const stack = await tlsUpstream(t, true)
  stack.gemini.configure({ chunkDelayMs: 100, chunkCount: 3 })
  const holder = await personWithKey(stack)
  // One call first: calls that arrive while the first TLS handshake is under way each open a connection of their own.
  await (await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: BODY })).text()
  const streams = 60
  const answers = await Promise.all(Array.from({ length: streams }, async () => {
    const response = await fetch(`${stack.url}${STREAM}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: BODY })
    return (await response.text()).split('data: ').length - 1
  }))
  t.same(answers, Array.from({ length: streams }, () => 3), 'every stream got its three chunks')
  t.ok(stack.gemini.requests.every((request) => request.httpVersion === '2.0'))
  t.ok(stack.gemini.connectionsOpened <= 2, `${streams} concurrent streams over ${stack.gemini.connectionsOpened} connection(s)`)
})

t.test('an upstream that does not offer HTTP/2 gets HTTP/1.1', async (t) => {
  const stack = await tlsUpstream(t, false)
  const holder = await personWithKey(stack)
  const response = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: BODY })
  t.equal(response.status, 200)
  t.equal(stack.gemini.requests[0]?.httpVersion, '1.1')
})

t.test('UPSTREAM_HTTP2=false keeps HTTP/1.1 even when the upstream offers HTTP/2', async (t) => {
  const stack = await tlsUpstream(t, true, { UPSTREAM_HTTP2: 'false' })
  const holder = await personWithKey(stack)
  const response = await fetch(`${stack.url}${GENERATE}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: BODY })
  t.equal(response.status, 200)
  t.equal(stack.gemini.requests[0]?.httpVersion, '1.1')
})
