import { randomBytes } from 'node:crypto'
import { pino } from 'pino'
import type { Test } from 'tap'
import { personIdFor } from '../src/auth/person.js'
import { OidcProvider } from '../src/auth/provider.js'
import { MemoryStore } from '../src/store/memory.js'
import { RedisStore, createRedisClient } from '../src/store/redis.js'
import type { Store } from '../src/store/store.js'
import { openidRefreshGrant, openidRevokeGrant, type RefreshGrant, type RevokeGrant } from '../src/tokens/grant.js'
import { StoreTokenVault, type VaultOptions } from '../src/tokens/store-vault.js'
import type { OidcProviderFixture } from './fixtures/oidc.js'

export const PUBLIC_URL = 'http://127.0.0.1:8080'
export const SCOPE = 'openid email profile https://www.googleapis.com/auth/generative-language.retriever'

export function encryptionKey (): string {
  return randomBytes(32).toString('base64')
}

/** A RedisStore with its own client on the fixture's server, closed at teardown. */
export function redisStore (t: Test, url: string): RedisStore {
  const store = new RedisStore(createRedisClient({ url }))
  t.teardown(async () => { await store.close() })
  return store
}

/** Where {@link HookedStore} can stop a command: a write of a key (set or compare-and-set), or a publish on a channel. */
export type HookPoint = 'write' | 'publish'

/**
 * A RedisStore (real server, real connection) that runs a hook just before a chosen command,
 * once: another replica's sign-in or sign-out landing at that exact point of a refresh.
 */
export class HookedStore extends RedisStore {
  readonly #hooks: Array<{ point: HookPoint, matches: (name: string) => boolean, run: () => Promise<void> }> = []

  /** Runs `run` before the next `point` command whose key or channel `matches`. */
  once (point: HookPoint, matches: (name: string) => boolean, run: () => Promise<void>): void {
    this.#hooks.push({ point, matches, run })
  }

  async #fire (point: HookPoint, name: string): Promise<void> {
    const index = this.#hooks.findIndex((hook) => hook.point === point && hook.matches(name))
    if (index === -1) return
    const [hook] = this.#hooks.splice(index, 1)
    await hook!.run()
  }

  override async set (key: string, value: string, ttlMs?: number): Promise<void> {
    await this.#fire('write', key)
    await super.set(key, value, ttlMs)
  }

  override async setIfEquals (key: string, expected: string, value: string, ttlMs?: number): Promise<boolean> {
    await this.#fire('write', key)
    return await super.setIfEquals(key, expected, value, ttlMs)
  }

  override async publish (channel: string, message: string): Promise<void> {
    await this.#fire('publish', channel)
    await super.publish(channel, message)
  }
}

export function memoryStore (t: Test): Store {
  const store = new MemoryStore()
  t.teardown(async () => { await store.close() })
  return store
}

function providerClient (provider: OidcProviderFixture, clientSecret: string): OidcProvider {
  return new OidcProvider({ issuer: provider.issuer, clientId: provider.clientId, clientSecret, scopes: SCOPE, authParams: '' }, pino({ level: 'silent' }))
}

/** The gateway's provider client and refresh grant against the fixture provider (with another client secret: a broken deploy). */
export function providerGrant (provider: OidcProviderFixture, clientSecret = provider.clientSecret): RefreshGrant {
  return openidRefreshGrant(providerClient(provider, clientSecret))
}

/** The gateway's token revocation against the fixture provider. */
export function providerRevoke (provider: OidcProviderFixture): RevokeGrant {
  return openidRevokeGrant(providerClient(provider, provider.clientSecret))
}

/** Options a test vault gets unless the test says otherwise: small timings. */
export type TestVaultOptions = Partial<VaultOptions> & Pick<VaultOptions, 'keys' | 'grant'>

export function makeVault (t: Test, store: Store, options: TestVaultOptions): StoreTokenVault {
  const vault = new StoreTokenVault(store, {
    publicUrl: PUBLIC_URL,
    refreshAheadMs: 2_000,
    pollIntervalMs: 100,
    lockTtlMs: 3_000,
    lockPollMs: 25,
    jitterMs: 300,
    backoffBaseMs: 200,
    backoffMaxMs: 1_000,
    forceCooldownMs: 0,
    ...options,
  })
  t.teardown(async () => { await vault.stop() })
  return vault
}

/** A person as the vault knows them: signed in at the fixture provider, tokens saved. */
export interface Person {
  sub: string
  personId: string
}

/** Signs `sub` in at the fixture provider (code flow + PKCE) and saves the tokens in `vault`. */
export async function signIn (provider: OidcProviderFixture, vault: StoreTokenVault, sub: string, expiresAt?: number): Promise<Person> {
  provider.addUser({ sub, email: `${sub}@example.com`, name: sub })
  const tokens = await provider.issueTokens({ user: sub, scope: SCOPE })
  const personId = personIdFor(provider.issuer, sub)
  await vault.save(personId, sub, {
    accessToken: tokens.access_token,
    refreshToken: tokens.refresh_token,
    expiresAt: expiresAt ?? Date.now() + tokens.expires_in * 1000,
    scope: tokens.scope,
  })
  return { sub, personId }
}

/** Grants of one person grouped as the provider recorded them: successes, and refresh tokens spent more than once. */
export function refreshSummary (provider: OidcProviderFixture, sub: string): { ok: number, failed: number, reused: number } {
  const grants = provider.refreshGrantsFor(sub)
  const spent = grants.map((grant) => grant.refreshTokenUsed)
  return {
    ok: grants.filter((grant) => grant.success).length,
    failed: grants.filter((grant) => !grant.success).length,
    reused: spent.length - new Set(spent).size,
  }
}

/** What a run of calls saw: how many, how many the upstream refused (401), and what the vault threw. */
export interface CallReport {
  calls: number
  ok: number
  unauthorized: number
  /** Vault errors by code (GEMGATE_UNAVAILABLE while the provider is down, …). */
  vaultErrors: Record<string, number>
  /** Every access token handed out. */
  tokens: Set<string>
  /** Each call's outcome: `ok`, `unauthorized`, or the vault's error code. */
  timeline: Array<{ at: number, sub: string, outcome: string }>
}

/**
 * Calls the fake Gemini for each person every `intervalMs` until `until()` is true, with a
 * token from the vaults in turn, as the proxy would. Never asserts; the test reads the report.
 */
export async function steadyCalls (options: {
  vaults: StoreTokenVault[]
  people: Person[]
  upstreamUrl: string
  intervalMs: number
  until: () => boolean
}): Promise<CallReport> {
  const report: CallReport = { calls: 0, ok: 0, unauthorized: 0, vaultErrors: {}, tokens: new Set(), timeline: [] }
  await Promise.all(options.people.map(async (person, index) => {
    for (let turn = index; !options.until(); turn++) {
      const vault = options.vaults[turn % options.vaults.length]!
      report.calls++
      try {
        const token = await vault.accessToken(person.personId)
        report.tokens.add(token)
        const response = await fetch(`${options.upstreamUrl}/v1beta/models`, { headers: { authorization: `Bearer ${token}` } })
        await response.arrayBuffer()
        if (response.status === 401) report.unauthorized++
        else if (response.ok) report.ok++
        report.timeline.push({ at: Date.now(), sub: person.sub, outcome: response.status === 401 ? 'unauthorized' : response.ok ? 'ok' : String(response.status) })
      } catch (error) {
        const code = (error as { code?: string }).code ?? String(error)
        report.vaultErrors[code] = (report.vaultErrors[code] ?? 0) + 1
        report.timeline.push({ at: Date.now(), sub: person.sub, outcome: code })
      }
      await new Promise((resolve) => setTimeout(resolve, options.intervalMs))
    }
  }))
  return report
}

/** Refresh grants of a person closer together than `withinMs`: two refreshes of one token. */
export function doubleRefreshes (provider: OidcProviderFixture, sub: string, withinMs: number): number {
  const times = provider.refreshGrantsFor(sub).filter((grant) => grant.success).map((grant) => grant.at).sort((a, b) => a - b)
  return times.filter((at, index) => index > 0 && at - times[index - 1]! < withinMs).length
}

export async function waitFor (condition: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await condition()) return true
    await new Promise((resolve) => setTimeout(resolve, stepMs))
  }
  return await condition()
}
