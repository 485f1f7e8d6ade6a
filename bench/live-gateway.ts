// The gateway alone in its own process, for bench/live.ts to measure: in-memory store, one
// person with a long-lived token and a key, UPSTREAM_URL from the environment. Prints
// `{"port","key"}` on stdout once listening.
import { randomBytes } from 'node:crypto'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config/load.js'

const upstream = process.env.BENCH_UPSTREAM_URL ?? 'http://127.0.0.1:9'
const config = loadConfig({
  env: {
    PUBLIC_URL: 'http://127.0.0.1:8080',
    // Never reached: a bench key needs no sign-in.
    OIDC_ISSUER: 'http://127.0.0.1:9',
    OIDC_CLIENT_ID: 'bench',
    OIDC_CLIENT_SECRET: 'bench',
    COOKIE_SECRETS: randomBytes(32).toString('base64url'),
    TOKEN_ENCRYPTION_KEYS: randomBytes(32).toString('base64'),
    ALLOWED_EMAIL_DOMAINS: 'example.com',
    UPSTREAM_URL: upstream,
    LOG_LEVEL: 'silent',
  },
})
const app = await buildApp(config)
const personId = 'bench-person'
await app.profiles.save(personId, { sub: 'bench', email: 'bench@example.com', name: 'Bench' })
await app.vault.save(personId, 'bench', { accessToken: `ya29.bench-${randomBytes(16).toString('base64url')}`, refreshToken: 'bench-refresh', expiresAt: Date.now() + 24 * 3600_000, scope: 'openid' })
const { secret } = await app.keys.create(personId, 'bench')
await app.listen({ port: 0, host: '127.0.0.1' })
const address = app.server.address() as { port: number }
process.stdout.write(`${JSON.stringify({ port: address.port, key: secret })}\n`)
// bench/live.ts asks for a reading: after a collection, so garbage does not count as sessions.
process.on('SIGUSR2', () => {
  (globalThis as { gc?: () => void }).gc?.()
  process.stdout.write(`${JSON.stringify(process.memoryUsage())}\n`)
})
process.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
