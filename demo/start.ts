import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config/load.js'
import type { Config } from '../src/config/schema.js'
import { startFakeGemini } from '../test/fixtures/gemini.js'
import { startProvider, type FixtureUser } from '../test/fixtures/oidc.js'
import { DEFAULT_MODEL } from '../src/config/models.js'
import { startExampleApp } from './example-app.js'

/** The gateway's port unless PORT says otherwise. */
export const DEFAULT_DEMO_PORT = 8080
/** The one person who can sign in to the offline demo. */
export const DEMO_USER: Required<Pick<FixtureUser, 'sub' | 'email' | 'name' | 'password'>> = {
  sub: 'demo',
  email: 'demo@example.com',
  name: 'Demo User',
  password: 'gemgate',
}
/** What the embedded provider's consent page calls the gateway. */
export const DEMO_CLIENT_NAME = 'Gemgate demo'
// Slow enough to watch the answer arrive, in enough pieces to see it stream.
const FAKE_CHUNK_COUNT = 12
const FAKE_CHUNK_DELAY_MS = 120

/** Options for {@link startDemo}. */
export interface DemoOptions {
  /** The environment: REDIS_URL, LOG_LEVEL, GEMINI_MODEL, and Google's OIDC_CLIENT_ID/_SECRET for the real thing. */
  env?: Record<string, string | undefined>
  /** The gateway's port; default PORT, else 8080. */
  port?: number
  /** Where people open the gateway; default `http://localhost:PORT`. */
  publicUrl?: string
  /** The gateway's logger for its config (LOG_LEVEL, warn by default in the demo); default none. */
  logger?: (config: Config) => FastifyServerOptions['logger']
}

/** A running demo. */
export interface Demo {
  /** `offline`: embedded provider and fake Gemini; `google`: real Google sign-in and Gemini. */
  mode: 'offline' | 'google'
  /** The gateway's public URL: open it in a browser. */
  url: string
  /** The example app behind the gateway (reach it through `url`). */
  appUrl: string
  /** The model the chat page and the snippets use. */
  model: string
  /** Who signs in to the offline demo; null with real Google. */
  user: { username: string, password: string } | null
  app: FastifyInstance
  /** Stops everything the demo started, last started first. */
  stop: () => Promise<void>
}

/** Collects what to undo, in the shape the test fixtures take (`t.teardown`). */
class Teardowns {
  readonly #steps: Array<() => unknown> = []
  teardown (step: () => unknown): void { this.#steps.push(step) }
  async run (): Promise<void> {
    for (const step of this.#steps.splice(0).reverse()) await step()
  }
}

function present (env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ''))
}

/** Where a demo on Redis keeps its secrets between runs (inside node_modules: never committed). */
const SECRETS_FILE = fileURLToPath(new URL('../node_modules/.cache/gemgate-demo/secrets.json', import.meta.url))

/**
 * Throwaway secrets, new for each run in memory. On Redis they are kept in SECRETS_FILE: what a
 * previous run sealed there (the assertion signing keys) must still open. Yours, when given, win.
 */
function demoSecrets (env: Record<string, string>): Record<string, string> {
  const fresh = { COOKIE_SECRETS: randomBytes(32).toString('base64url'), TOKEN_ENCRYPTION_KEYS: randomBytes(32).toString('base64') }
  if (env.REDIS_URL === undefined) return fresh
  if (existsSync(SECRETS_FILE)) return JSON.parse(readFileSync(SECRETS_FILE, 'utf8')) as Record<string, string>
  mkdirSync(dirname(SECRETS_FILE), { recursive: true })
  writeFileSync(SECRETS_FILE, JSON.stringify(fresh), { mode: 0o600 })
  return fresh
}

async function offlineEnvironment (teardowns: Teardowns, env: Record<string, string>, publicUrl: string, model: string) {
  const provider = await startProvider(teardowns, {
    redirectUris: [`${publicUrl}/auth/callback`],
    clientName: DEMO_CLIENT_NAME,
    signInHint: `Demo user: ${DEMO_USER.email}, password: ${DEMO_USER.password}`,
  })
  provider.addUser(DEMO_USER)
  const gemini = await startFakeGemini(teardowns, {
    provider: { introspect: async (token) => await provider.introspect(token) },
    chunkCount: FAKE_CHUNK_COUNT,
    chunkDelayMs: FAKE_CHUNK_DELAY_MS,
  })
  const app = await startExampleApp({ model, notice: 'Offline demo: the Gemini behind this gateway is a stand-in that echoes your message back, a piece at a time.' })
  teardowns.teardown(app.close)
  return {
    appUrl: app.url,
    settings: {
      ...demoSecrets(env),
      LOG_LEVEL: 'warn',
      OIDC_ISSUER: provider.issuer,
      OIDC_CLIENT_ID: provider.clientId,
      OIDC_CLIENT_SECRET: provider.clientSecret,
      UPSTREAM_URL: gemini.url,
      ALLOWED_EMAILS: DEMO_USER.email,
      // Ask for the password every time, so signing out is not undone by the provider's own session.
      OIDC_AUTH_PARAMS: 'prompt=login',
      ...pick(env, ['REDIS_URL', 'LOG_LEVEL', 'COOKIE_SECRETS', 'TOKEN_ENCRYPTION_KEYS']),
    },
  }
}

async function googleEnvironment (teardowns: Teardowns, env: Record<string, string>, model: string) {
  const app = await startExampleApp({ model })
  teardowns.teardown(app.close)
  const allowList = env.ALLOWED_EMAILS === undefined && env.ALLOWED_EMAIL_DOMAINS === undefined ? { ALLOWED_EMAIL_DOMAINS: '*' } : {}
  // Every gateway setting from the environment applies; the demo only fills in what is missing.
  return { appUrl: app.url, settings: { ...demoSecrets(env), LOG_LEVEL: 'warn', ...allowList, ...env } }
}

function pick (env: Record<string, string>, names: string[]): Record<string, string> {
  return Object.fromEntries(names.flatMap((name) => env[name] === undefined ? [] : [[name, env[name]]]))
}

/**
 * Runs the whole product on this machine: the gateway fronting the example chat app, and,
 * unless Google credentials (OIDC_CLIENT_ID, OIDC_CLIENT_SECRET) are in the environment, an
 * embedded OIDC provider with a demo user and a fake Gemini. Everything listens on 127.0.0.1.
 */
export async function startDemo (options: DemoOptions = {}): Promise<Demo> {
  const env = present(options.env ?? {})
  const port = options.port ?? Number(env.PORT ?? DEFAULT_DEMO_PORT)
  const publicUrl = options.publicUrl ?? env.PUBLIC_URL ?? `http://localhost:${port}`
  const model = env.GEMINI_MODEL ?? DEFAULT_MODEL
  const mode = env.OIDC_CLIENT_ID !== undefined && env.OIDC_CLIENT_SECRET !== undefined ? 'google' : 'offline'
  const teardowns = new Teardowns()
  try {
    const { appUrl, settings } = mode === 'google'
      ? await googleEnvironment(teardowns, env, model)
      : await offlineEnvironment(teardowns, env, publicUrl, model)
    const config = loadConfig({
      env: { ...settings, PUBLIC_URL: publicUrl, HOST: '127.0.0.1', PORT: String(port), APP_UPSTREAM_URL: appUrl },
    })
    const app = await buildApp(config, { logger: options.logger?.(config) ?? false })
    teardowns.teardown(async () => { await app.close() })
    await app.listen({ port: config.port, host: config.host })
    return {
      mode,
      url: publicUrl,
      appUrl,
      model,
      user: mode === 'offline' ? { username: DEMO_USER.email, password: DEMO_USER.password } : null,
      app,
      stop: async () => { await teardowns.run() },
    }
  } catch (error) {
    await teardowns.run()
    throw error
  }
}
