import { exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK } from 'jose'
import t from 'tap'
import { DEFAULT_KEY_ROTATION_MS } from '../src/sidecar/jwks.js'
import { TokenCipher } from '../src/tokens/crypto.js'
import type { EchoedRequest } from './fixtures/echo-app.js'
import { headerValue, startSidecarStack, type SidecarStack } from './helpers/sidecar.js'

const MODEL = 'gemini-2.5-flash'

async function callGemini (stack: SidecarStack, credential: string, as: 'key' | 'bearer' = 'key'): Promise<number> {
  const response = await fetch(`${stack.url}/v1beta/models/${MODEL}:generateContent`, {
    method: 'POST',
    headers: {
      ...(as === 'key' ? { 'x-goog-api-key': credential } : { authorization: `Bearer ${credential}` }),
      'content-type': 'application/json',
    },
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
  })
  await response.body?.cancel()
  return response.status
}

/** The gateway's real private signing key, read back the way only a holder of TOKEN_ENCRYPTION_KEYS could. */
async function gatewayKey (stack: SidecarStack): Promise<{ kid: string, key: CryptoKey }> {
  const period = Math.floor(Date.now() / DEFAULT_KEY_ROTATION_MS)
  const stored = JSON.parse((await stack.app.store.get(`assertion:signing-key:${period}`))!) as { kid: string, sealed: string }
  const jwk = JSON.parse(new TokenCipher(stack.config.tokenEncryptionKeys).decrypt(stored.sealed, `assertion-signing-key:${stored.kid}`).plaintext) as JWK
  return { kid: stored.kid, key: await importJWK(jwk, 'ES256') as CryptoKey }
}

function unsigned (header: object, payload: object, signature = ''): string {
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${part(header)}.${part(payload)}.${signature}`
}

t.test('assertions the gateway did not issue, or issued for something else, get 401 and never reach Gemini', async (t) => {
  const stack = await startSidecarStack(t)
  const { browser } = await stack.signIn()
  const real = headerValue(await (await browser.fetch('/page')).json() as EchoedRequest, 'x-gemgate-assertion')!
  t.equal(await callGemini(stack, real), 200, 'the genuine assertion works')
  stack.gemini.clear()

  const now = Math.floor(Date.now() / 1000)
  const claims = { iss: stack.url, aud: stack.url, sub: 'alice', email: 'alice@example.com', iat: now, exp: now + 300 }
  const { kid, key } = await gatewayKey(stack)
  const withOurKey = async (changes: object, header: object = {}): Promise<string> =>
    await new SignJWT({ ...claims, ...changes }).setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid, ...header }).sign(key)

  const attacker = await generateKeyPair('ES256', { extractable: true })
  const jwks = await (await fetch(`${stack.url}/.well-known/jwks.json`)).json() as { keys: JWK[] }
  const idToken = (await stack.provider.issueTokens({ user: 'alice', scope: 'openid email profile' })).id_token!

  const forgeries: Record<string, string> = {
    'alg none': unsigned({ alg: 'none', typ: 'JWT', kid }, claims, 'AA'),
    'HS256 keyed with the public JWK (algorithm confusion)': await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid }).sign(new TextEncoder().encode(JSON.stringify(jwks.keys[0]))),
    'an attacker\'s key under our kid': await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid }).sign(attacker.privateKey),
    'an attacker\'s key with an embedded jwk': await new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', jwk: await exportJWK(attacker.publicKey) }).sign(attacker.privateKey),
    'the identity provider\'s own ID token (foreign issuer)': idToken,
    'our key, a foreign issuer': await withOurKey({ iss: 'https://evil.example' }),
    'our key, another audience': await withOurKey({ aud: 'https://other-app.example' }),
    'our key, no expiry': await withOurKey({ exp: undefined }),
    'our key, a year-long lifetime': await withOurKey({ exp: now + 365 * 24 * 3600 }),
    'our key, issued in the future': await withOurKey({ iat: now + 3600, exp: now + 3900 }),
    'our key, another token type': await withOurKey({}, { typ: 'at+jwt' }),
  }
  for (const [name, token] of Object.entries(forgeries)) {
    t.equal(await callGemini(stack, token), 401, `${name}: x-goog-api-key`)
    t.equal(await callGemini(stack, token, 'bearer'), 401, `${name}: Authorization: Bearer`)
  }
  t.equal(stack.gemini.requests.length, 0, 'no forgery reached Gemini')
  t.equal(await callGemini(stack, await withOurKey({})), 200, 'the same claims, correctly signed, do work: the checks above are what refused them')
})

t.test('an assertion is a credential for the Gemini API only, not a sign-in to the app', async (t) => {
  const stack = await startSidecarStack(t)
  const { browser } = await stack.signIn()
  const assertion = headerValue(await (await browser.fetch('/page')).json() as EchoedRequest, 'x-gemgate-assertion')!
  const before = stack.echo.requests.length
  const replayed = await fetch(`${stack.url}/admin`, { headers: { authorization: `Bearer ${assertion}` } })
  t.equal(replayed.status, 401)
  const asKey = await fetch(`${stack.url}/admin`, { headers: { 'x-goog-api-key': assertion } })
  t.equal(asKey.status, 401)
  t.equal(stack.echo.requests.length, before, 'the app saw neither')
})
