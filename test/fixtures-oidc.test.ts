import * as client from 'openid-client'
import t, { type Test } from 'tap'
import { startProvider, type OidcProviderFixture, type StartProviderOptions } from './fixtures/oidc.js'

const REDIRECT_URI = 'http://127.0.0.1:8080/auth/callback'
const SCOPE = 'openid email profile https://www.googleapis.com/auth/generative-language.retriever'

async function setup(t: Test, options: StartProviderOptions = {}) {
  const provider = await startProvider(t, { redirectUris: [REDIRECT_URI], ...options })
  const config = await client.discovery(
    new URL(provider.issuer),
    provider.clientId,
    undefined,
    client.ClientSecretBasic(provider.clientSecret),
    { execute: [client.allowInsecureRequests] },
  )
  return { provider, config }
}

async function signIn(provider: OidcProviderFixture, config: client.Configuration, user?: string) {
  const verifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: SCOPE,
    state,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  })
  const callback = await provider.login(url.href, { user })
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedState: state,
  })
  return { callback, tokens }
}

function errorCode(error: unknown): unknown {
  return error instanceof client.ResponseBodyError ? error.error : error
}

t.test('login() returns the redirect to the client with code, state and iss', async (t) => {
  const { provider, config } = await setup(t)
  t.equal(provider.issuer, `http://127.0.0.1:${provider.port}`)
  t.equal(config.serverMetadata().issuer, provider.issuer)
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid',
    state: 'xyz',
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
  })
  const callback = new URL(await provider.login(url.href))
  t.equal(`${callback.origin}${callback.pathname}`, REDIRECT_URI)
  t.ok(callback.searchParams.get('code'))
  t.equal(callback.searchParams.get('state'), 'xyz')
  t.equal(callback.searchParams.get('iss'), provider.issuer)
})

t.test('the code exchange gives tokens, a refresh token and an ID token with the email', async (t) => {
  const { provider, config } = await setup(t, { accessTokenTtlSeconds: 120 })
  const { tokens } = await signIn(provider, config)
  t.ok(tokens.access_token)
  t.ok(tokens.refresh_token, 'refresh token without offline_access')
  t.equal(tokens.expires_in, 120)
  t.equal(tokens.scope, SCOPE)
  t.match(tokens.claims(), { sub: 'alice', email: 'alice@example.com', email_verified: true, name: 'Alice Example' })
  t.match(provider.grants, [{ grantType: 'authorization_code', sub: 'alice', success: true, refreshTokenIssued: tokens.refresh_token }])
})

t.test('a refresh grant gives a new access token and is recorded', async (t) => {
  const { provider, config } = await setup(t)
  const { tokens } = await signIn(provider, config)
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token ?? '')
  t.not(refreshed.access_token, tokens.access_token)
  t.equal(refreshed.refresh_token, tokens.refresh_token, 'no rotation by default')
  const again = await client.refreshTokenGrant(config, tokens.refresh_token ?? '')
  t.ok(again.access_token, 'the same refresh token keeps working')
  t.match(provider.refreshGrantsFor('alice'), [
    { grantType: 'refresh_token', success: true, refreshTokenUsed: tokens.refresh_token },
    { grantType: 'refresh_token', success: true, refreshTokenUsed: tokens.refresh_token },
  ])
})

t.test('client_secret_post is accepted too', async (t) => {
  const provider = await startProvider(t, { redirectUris: [REDIRECT_URI] })
  const config = await client.discovery(new URL(provider.issuer), provider.clientId, undefined,
    client.ClientSecretPost(provider.clientSecret), { execute: [client.allowInsecureRequests] })
  const { tokens } = await signIn(provider, config)
  t.ok((await client.refreshTokenGrant(config, tokens.refresh_token ?? '')).access_token)
})

t.test('with rotation on, the old refresh token fails with invalid_grant', async (t) => {
  const { provider, config } = await setup(t, { rotateRefreshTokens: true })
  const { tokens } = await signIn(provider, config)
  const rotated = await client.refreshTokenGrant(config, tokens.refresh_token ?? '')
  t.ok(rotated.refresh_token)
  t.not(rotated.refresh_token, tokens.refresh_token)
  const error = await client.refreshTokenGrant(config, tokens.refresh_token ?? '').catch((e: unknown) => e)
  t.equal(errorCode(error), 'invalid_grant')
  const revokedToo = await client.refreshTokenGrant(config, rotated.refresh_token ?? '').catch((e: unknown) => e)
  t.equal(errorCode(revokedToo), 'invalid_grant', 'reusing a rotated token revokes the whole grant, as oidc-provider does')
  t.match(provider.refreshGrantsFor('alice'), [
    { success: true, refreshTokenUsed: tokens.refresh_token, refreshTokenIssued: rotated.refresh_token },
    { success: false, error: 'invalid_grant', refreshTokenUsed: tokens.refresh_token },
    { success: false, error: 'invalid_grant', refreshTokenUsed: rotated.refresh_token },
  ])
})

t.test('introspection reports active tokens and inactive ones after revocation', async (t) => {
  const { provider, config } = await setup(t)
  const { tokens } = await signIn(provider, config)
  const live = await client.tokenIntrospection(config, tokens.access_token)
  t.match(live, { active: true, sub: 'alice', client_id: provider.clientId })
  t.match(await provider.introspect(tokens.access_token), { active: true, sub: 'alice', kind: 'AccessToken', scope: SCOPE })

  await client.tokenRevocation(config, tokens.access_token)
  t.match(await client.tokenIntrospection(config, tokens.access_token), { active: false })
  t.match(await provider.introspect(tokens.access_token), { active: false })
  t.match(await provider.introspect('not-a-token'), { active: false })

  await provider.revoke(tokens.refresh_token ?? '')
  t.match(await provider.introspect(tokens.refresh_token ?? ''), { active: false })
  const error = await client.refreshTokenGrant(config, tokens.refresh_token ?? '').catch((e: unknown) => e)
  t.equal(errorCode(error), 'invalid_grant')
})

t.test('login() can deny consent, and sign in by email as another user', async (t) => {
  const { provider, config } = await setup(t)
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid',
    state: 's1',
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
  })
  const denied = new URL(await provider.login(url.href, { deny: true }))
  t.equal(denied.searchParams.get('error'), 'access_denied')
  t.equal(denied.searchParams.get('state'), 's1')

  provider.addUser({ sub: 'bob', email: 'Bob@Example.com', name: 'Bob' })
  const { tokens } = await signIn(provider, config, 'bob@example.com')
  t.match(tokens.claims(), { sub: 'bob', email: 'Bob@Example.com', email_verified: true })
  await t.rejects(provider.login(url.href, { user: 'nobody' }), /Unknown user/)
})

t.test('PKCE is required', async (t) => {
  const { provider, config } = await setup(t)
  const url = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT_URI, scope: 'openid', state: 's' })
  const callback = new URL(await provider.login(url.href))
  t.equal(callback.searchParams.get('error'), 'invalid_request')
  t.match(callback.searchParams.get('error_description'), /PKCE/)
})

t.test('redirect URIs can be set after start; others are refused', async (t) => {
  const { provider, config } = await setup(t, { redirectUris: [] })
  const later = 'http://127.0.0.1:9999/auth/callback'
  const build = async () => client.buildAuthorizationUrl(config, {
    redirect_uri: later,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
  }).href
  await t.rejects(provider.login(await build()), /redirect_uri/)
  provider.setRedirectUris([later])
  t.same(provider.redirectUris, [later])
  t.match(await provider.login(await build()), new RegExp(`^${later}\\?code=`))
})

t.test('failRefreshFor() fails one person\'s refreshes only', async (t) => {
  const { provider, config } = await setup(t)
  provider.addUser({ sub: 'bob', email: 'bob@example.com' })
  const alice = await signIn(provider, config)
  const bob = await signIn(provider, config, 'bob')

  provider.failRefreshFor('bob', 'invalid_grant')
  const error = await client.refreshTokenGrant(config, bob.tokens.refresh_token ?? '').catch((e: unknown) => e)
  t.equal(errorCode(error), 'invalid_grant')
  t.ok((await client.refreshTokenGrant(config, alice.tokens.refresh_token ?? '')).access_token, 'alice unaffected')

  provider.failRefreshFor('bob', 'server_error')
  const outage = await client.refreshTokenGrant(config, bob.tokens.refresh_token ?? '').catch((e: unknown) => e)
  t.equal(((outage as Error).cause as Response).status, 500, 'a 5xx, like a provider outage')

  provider.clearRefreshFailures('bob')
  t.ok((await client.refreshTokenGrant(config, bob.tokens.refresh_token ?? '')).access_token, 'bob recovers')
  t.match(provider.refreshGrantsFor('bob').map((grant) => grant.error), ['invalid_grant', 'server_error', undefined])
})

t.test('stop() and start() take the provider offline and back, keeping its state', async (t) => {
  const { provider, config } = await setup(t)
  const { tokens } = await signIn(provider, config)
  await provider.stop()
  t.equal(provider.running, false)
  await t.rejects(client.refreshTokenGrant(config, tokens.refresh_token ?? ''), 'unreachable while stopped')
  t.match(await provider.introspect(tokens.access_token), { active: true }, 'in-process introspection still works')
  await provider.start()
  t.equal(provider.running, true)
  t.ok((await client.refreshTokenGrant(config, tokens.refresh_token ?? '')).access_token)
})

t.test('issueTokens() and setAccessTokenTtl() give tokens without a client library', async (t) => {
  const provider = await startProvider(t)
  provider.setAccessTokenTtl(5)
  const tokens = await provider.issueTokens({ scope: SCOPE })
  t.equal(tokens.expires_in, 5)
  t.ok(tokens.refresh_token)
  t.match(await provider.introspect(tokens.access_token), { active: true, sub: 'alice', scope: SCOPE })
})

t.test('the sign-in pages work for a browser', async (t) => {
  const { provider, config } = await setup(t)
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
  })
  const start = await fetch(url, { redirect: 'manual' })
  t.equal(start.status, 303)
  const page = await fetch(new URL(start.headers.get('location') ?? '', provider.issuer), {
    headers: { cookie: start.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ') },
  })
  t.equal(page.status, 200)
  const html = await page.text()
  t.match(html, /<input name="login"/)
  t.match(html, /<input name="password" type="password"/)
})
