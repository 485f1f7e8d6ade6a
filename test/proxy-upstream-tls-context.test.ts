import tls from 'node:tls'
import t from 'tap'
import { selfSignedCert } from './fixtures/gemini.js'
import { personWithKey, startProxyStack } from './helpers/person.js'

const STREAM = '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse'
const BODY = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hello' }] }] })

// A TLS context built from the system CAs plus UPSTREAM_CA_FILE parses every root certificate
// (over a hundred): about a megabyte of memory and milliseconds of CPU. Built per connection, an
// HTTP/1.1 upstream holding a connection per stream paid that per stream, and a burst of new
// HTTP/2 connections stalled the event loop for as long.
t.test('upstream connections share one TLS context, built once', async (t) => {
  const cert = await selfSignedCert(t)
  const stack = await startProxyStack(t, { memory: true, gemini: { tls: { key: cert.key, cert: cert.cert }, http2: false }, env: { UPSTREAM_CA_FILE: cert.certPath } })
  stack.gemini.configure({ chunkDelayMs: 100, chunkCount: 2 })
  const holder = await personWithKey(stack)
  const original = tls.createSecureContext
  let built = 0
  tls.createSecureContext = (options) => {
    built++
    return original(options)
  }
  t.teardown(() => { tls.createSecureContext = original })
  const streams = 4
  const answers = await Promise.all(Array.from({ length: streams }, async () => {
    const response = await fetch(`${stack.url}${STREAM}`, { method: 'POST', headers: { 'x-goog-api-key': holder.key }, body: BODY })
    return (await response.text()).split('data: ').length - 1
  }))
  t.same(answers, [2, 2, 2, 2], 'every stream got its chunks, the certificate verified')
  t.ok(stack.gemini.connectionsOpened >= streams, `${stack.gemini.connectionsOpened} connections (one per HTTP/1.1 stream)`)
  t.equal(built, 0, 'no connection built a TLS context of its own')
})
