import type { Test } from 'tap'
import { personIdFor } from '../../src/auth/person.js'
import { TokenCipher } from '../../src/tokens/crypto.js'
import { TokenRecords } from '../../src/tokens/records.js'
import { startFakeGemini, type FakeGemini, type StartFakeGeminiOptions } from '../fixtures/gemini.js'
import type { OidcProviderFixture } from '../fixtures/oidc.js'
import { startStack, type Browser, type Stack, type StackOptions } from './stack.js'

/** A gateway whose UPSTREAM_URL is a fake Gemini that checks tokens with the stack's provider. */
export interface ProxyStack extends Stack {
  gemini: FakeGemini
}

/** Options for {@link startProxyStack}: the stack's, plus the fake upstream's. */
export interface ProxyStackOptions extends StackOptions {
  gemini?: Omit<StartFakeGeminiOptions, 'provider'>
  /** Set UPSTREAM_URL yourself (a TLS fake); the stack's fake is still started. */
  upstreamUrl?: string
}

/** Starts Redis, the OIDC provider, a fake Gemini and a gateway in front of it; all closed at teardown. */
export async function startProxyStack (t: Test, options: ProxyStackOptions = {}): Promise<ProxyStack> {
  let provider: OidcProviderFixture | undefined
  const gemini = await startFakeGemini(t, {
    ...options.gemini,
    provider: { introspect: async (token) => await provider!.introspect(token) },
  })
  const stack = await startStack(t, { ...options, env: { UPSTREAM_URL: options.upstreamUrl ?? gemini.url, ...options.env } })
  provider = stack.provider
  return { ...stack, gemini }
}

/** A signed-in person and a gateway key of theirs. */
export interface KeyHolder {
  personId: string
  sub: string
  /** The `gk_…` secret. */
  key: string
  keyId: string
  /** Their browser, signed in with a session cookie (absent for {@link personWithKey}). */
  browser?: Browser
}

/**
 * Signs a person in through the real flow and creates a key through POST /auth/keys, as they
 * would on the status page.
 */
export async function signInWithKey (stack: Stack, options: { user?: string, name?: string } = {}): Promise<KeyHolder & { browser: Browser }> {
  const { browser } = await stack.signIn(options.user === undefined ? {} : { user: options.user })
  const response = await browser.fetch('/auth/keys', {
    method: 'POST',
    headers: { origin: stack.url, 'content-type': 'application/json' },
    body: JSON.stringify({ name: options.name ?? 'test key' }),
  })
  if (response.status !== 201) throw new Error(`POST /auth/keys answered ${response.status}: ${await response.text()}`)
  const created = await response.json() as { id: string, key: string }
  const sub = options.user ?? stack.provider.defaultUser.sub
  return { personId: personIdFor(stack.provider.issuer, sub), sub, key: created.key, keyId: created.id, browser }
}

/**
 * A person with tokens from the provider (no browser, no session) and a key made directly in
 * the key store. `expiresAt` overrides when the vault believes the access token expires.
 */
export async function personWithKey (stack: Stack, options: { user?: string, expiresAt?: number } = {}): Promise<KeyHolder & { accessToken: string }> {
  const user = options.user ?? stack.provider.defaultUser.sub
  const tokens = await stack.provider.issueTokens({ user, scope: 'openid email profile' })
  const claims = JSON.parse(Buffer.from(tokens.id_token!.split('.')[1]!, 'base64url').toString()) as { sub: string, email: string, name?: string }
  const personId = personIdFor(stack.provider.issuer, claims.sub)
  await stack.app.profiles.save(personId, { sub: claims.sub, email: claims.email, name: claims.name ?? claims.email })
  await stack.app.vault.save(personId, claims.sub, {
    accessToken: tokens.access_token,
    refreshToken: tokens.refresh_token,
    expiresAt: options.expiresAt ?? Date.now() + tokens.expires_in * 1000,
    scope: tokens.scope,
  })
  const { key, secret } = await stack.app.keys.create(personId, 'direct key')
  return { personId, sub: claims.sub, key: secret, keyId: key.id, accessToken: tokens.access_token }
}

/**
 * Makes the vault believe a person's tokens were obtained `ms` ago, so a forced refresh (which
 * the vault skips for just-issued tokens) really goes to the provider.
 */
export async function ageTokens (stack: Stack, personId: string, ms: number): Promise<void> {
  const records = new TokenRecords(stack.app.store, new TokenCipher(stack.config.tokenEncryptionKeys), stack.app.log)
  const read = await records.read(personId)
  if (read === null) throw new Error(`no tokens for ${personId}`)
  const record = { ...read.record, obtainedAt: read.record.obtainedAt - ms }
  await records.write(personId, record, record.expiresAt - stack.config.refreshAheadSeconds * 1000)
}

/** `x-goog-api-key` for a key holder, as @google/genai sends it. */
export function keyHeaders (holder: KeyHolder): Record<string, string> {
  return { 'x-goog-api-key': holder.key }
}

/**
 * A person's metered usage of one model as /auth/me reports it, polled until it counts
 * `requests` calls (usage is written just after the answer), for at most about two seconds.
 */
export async function modelUsage (browser: { fetch: (path: string) => Promise<Response> }, model: string, requests: number): Promise<Record<string, number> | undefined> {
  let counts: Record<string, number> | undefined
  for (let attempt = 0; attempt < 100 && counts?.requests !== requests; attempt++) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 20))
    counts = ((await (await browser.fetch('/auth/me')).json()) as { usage: { byModel: Record<string, Record<string, number>> } }).usage.byModel[model]
  }
  return counts
}
