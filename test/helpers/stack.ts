import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/load.js'
import { loggerOptions } from '../../src/ops/logger.js'
import type { Config } from '../../src/config/schema.js'
import type { Store } from '../../src/store/store.js'
import { startProvider, type OidcProviderFixture, type StartProviderOptions } from '../fixtures/oidc.js'
import { freePort } from '../fixtures/ports.js'
import { startRedis, type RedisFixture } from '../fixtures/redis.js'

/** A cookie-keeping HTTP client that never follows redirects, like a browser seen one hop at a time. */
export class Browser {
  readonly cookies = new Map<string, string>()

  constructor (readonly origin: string) {}

  /** The Cookie header this browser would send. */
  cookieHeader (): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ')
  }

  /** Fetches a path of `origin` (or an absolute URL), sending and keeping cookies for `origin`. */
  async fetch (pathOrUrl: string, init: RequestInit = {}): Promise<Response> {
    const url = new URL(pathOrUrl, this.origin)
    const ours = url.origin === this.origin
    const headers = new Headers(init.headers)
    if (ours && this.cookies.size > 0 && !headers.has('cookie')) headers.set('cookie', this.cookieHeader())
    const response = await fetch(url, { ...init, headers, redirect: 'manual' })
    if (ours) this.#keep(response)
    return response
  }

  #keep (response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';')
      const at = pair!.indexOf('=')
      const name = pair!.slice(0, at).trim()
      const value = pair!.slice(at + 1).trim()
      const expired = attributes.some((attribute) => /^\s*max-age=0\s*$/i.test(attribute) || /^\s*expires=Thu, 01 Jan 1970/i.test(attribute))
      if (expired || value === '') this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }
}

/** Options for {@link startStack}. */
export interface StackOptions {
  /** Environment settings on top of the stack's own (ALLOWED_EMAIL_DOMAINS, …). */
  env?: Record<string, string>
  provider?: StartProviderOptions
  /** Use the in-memory store instead of a private redis-server. */
  memory?: boolean
  /** The store the gateway uses, made for the stack's Redis (a hooked store in fault tests); the stack closes it. */
  store?: (redis: RedisFixture) => Store
  /** Collects the gateway's log lines (as written, at LOG_LEVEL, `info` unless env says) into this array. */
  logLines?: string[]
}

/** A gateway on a real port with its own Redis and OIDC provider. */
export interface Stack {
  app: FastifyInstance
  config: Config
  /** The gateway's origin, also its PUBLIC_URL. */
  url: string
  provider: OidcProviderFixture
  redis: RedisFixture | undefined
  /** A new browser for the gateway's origin. */
  browser: () => Browser
  /** Signs a new browser in (the whole flow over HTTP) and returns it with the callback's answer. */
  signIn: (options?: { user?: string, rd?: string }) => Promise<{ browser: Browser, callback: Response }>
}

/** The settings every test gateway needs, secrets fresh for each run. */
export function testEnvironment (publicUrl: string, issuer: string, clientId: string, clientSecret: string): Record<string, string> {
  return {
    PUBLIC_URL: publicUrl,
    OIDC_ISSUER: issuer,
    OIDC_CLIENT_ID: clientId,
    OIDC_CLIENT_SECRET: clientSecret,
    OIDC_SCOPES: 'openid email profile',
    COOKIE_SECRETS: randomBytes(32).toString('base64url'),
    TOKEN_ENCRYPTION_KEYS: randomBytes(32).toString('base64'),
    ALLOWED_EMAIL_DOMAINS: 'example.com',
    LOG_LEVEL: 'silent',
  }
}

/** Starts Redis, the OIDC provider and a gateway listening on 127.0.0.1; all closed at teardown. */
export async function startStack (t: Test, options: StackOptions = {}): Promise<Stack> {
  const redis = options.memory === true ? undefined : await startRedis(t)
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const provider = await startProvider(t, { ...options.provider, redirectUris: [`${url}/auth/callback`] })
  const config = loadConfig({
    env: {
      ...testEnvironment(url, provider.issuer, provider.clientId, provider.clientSecret),
      ...(redis === undefined ? {} : { REDIS_URL: redis.url }),
      ...(options.logLines === undefined ? {} : { LOG_LEVEL: 'info' }),
      ...options.env,
    },
  })
  const lines = options.logLines
  const store = options.store === undefined || redis === undefined ? undefined : options.store(redis)
  const app = await buildApp(config, {
    ...(lines === undefined ? {} : { logger: { ...(loggerOptions(config, false) as object), stream: { write (line: string) { lines.push(line) } } } }),
    ...(store === undefined ? {} : { store }),
  })
  t.teardown(async () => {
    await app.close()
    await store?.close()
  })
  await app.listen({ port, host: '127.0.0.1' })
  const browser = (): Browser => new Browser(url)

  async function signIn ({ user, rd }: { user?: string, rd?: string } = {}) {
    const person = browser()
    const login = await person.fetch(`/auth/login${rd === undefined ? '' : `?rd=${encodeURIComponent(rd)}`}`)
    if (login.status !== 302) throw new Error(`/auth/login answered ${login.status}`)
    const callbackUrl = await provider.login(login.headers.get('location')!, user === undefined ? {} : { user })
    const callback = await person.fetch(callbackUrl)
    return { browser: person, callback }
  }

  return { app, config, url, provider, redis, browser, signIn }
}
