import t, { type Test } from 'tap'
import { selfSignedCert, startFakeGemini } from './fixtures/gemini.js'
import type { OidcProviderFixture } from './fixtures/oidc.js'
import { personWithKey } from './helpers/person.js'
import { startStack } from './helpers/stack.js'

const MODEL_PATH = '/v1beta/models/gemini-2.5-flash'

async function tlsStack (t: Test, caFile?: string) {
  let provider: OidcProviderFixture | undefined
  const cert = await selfSignedCert(t)
  const gemini = await startFakeGemini(t, { tls: { key: cert.key, cert: cert.cert }, provider: { introspect: async (token) => await provider!.introspect(token) } })
  const stack = await startStack(t, { memory: true, env: { UPSTREAM_URL: gemini.url, ...(caFile === undefined ? {} : { UPSTREAM_CA_FILE: caFile === 'own' ? cert.certPath : caFile }) } })
  provider = stack.provider
  return { stack, gemini }
}

t.test('an upstream with a certificate nobody vouches for is refused: 502, nothing sent', async (t) => {
  const { stack, gemini } = await tlsStack(t)
  t.match(gemini.url, /^https:/)
  const holder = await personWithKey(stack)
  const response = await fetch(`${stack.url}${MODEL_PATH}`, { headers: { 'x-goog-api-key': holder.key } })
  t.equal(response.status, 502)
  t.equal((await response.json() as { error: { status: string } }).error.status, 'UNAVAILABLE')
  t.equal(gemini.requests.length, 0, 'the request never got past the TLS handshake')
})

t.test('the same upstream is used once UPSTREAM_CA_FILE vouches for it', async (t) => {
  const { stack, gemini } = await tlsStack(t, 'own')
  const holder = await personWithKey(stack)
  const response = await fetch(`${stack.url}${MODEL_PATH}`, { headers: { 'x-goog-api-key': holder.key } })
  t.equal(response.status, 200)
  t.equal(gemini.requests.length, 1)
  t.equal(gemini.requests[0]?.sub, holder.sub)
})
