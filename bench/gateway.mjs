// The gateway under test, from the build in BENCH_BUILD (plain JavaScript: no TypeScript loader
// in the measured process, so its RSS is the gateway's). Logs at info as in production (stdout
// goes to /dev/null). Seeds one person the way a sign-in would leave them: a profile, tokens with
// a far-future expiry, a gateway key and a session, and reports them to bench/run.ts.
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { reportEventLoop } from './event-loop.mjs'

const build = process.env.BENCH_BUILD
const load = async (path) => await import(pathToFileURL(join(build, path)).href)
const [{ buildApp }, { loadConfig }, { loggerOptions }, { personIdFor }] = await Promise.all([
  load('app.js'), load('config/load.js'), load('ops/logger.js'), load('auth/person.js'),
])

const config = loadConfig({ env: process.env })
const app = await buildApp(config, { logger: loggerOptions(config, false) })
await app.listen({ port: config.port, host: config.host })

/** Seeds a person the way a sign-in would leave them (a profile, tokens with a far-future expiry) with a gateway key. */
async function seed (sub, email, name) {
  const personId = personIdFor(config.oidc.issuer, sub)
  await app.profiles.save(personId, { sub, email, name })
  await app.vault.save(personId, sub, {
    accessToken: process.env.BENCH_TOKEN,
    refreshToken: 'bench-refresh-token',
    expiresAt: Date.now() + 30 * 24 * 3600 * 1000,
    scope: 'openid email',
  })
  const { secret } = await app.keys.create(personId, 'bench')
  return { personId, key: secret }
}

const { personId, key } = await seed('bench-user', 'bench@example.com', 'Bench')
const sessionId = await app.sessions.create(personId)
// BENCH_FREE_PERSON: a second person with a key, for calls in the same process that no policy rule matches.
const freeKey = process.env.BENCH_FREE_PERSON === undefined ? undefined : (await seed('bench-free-user', process.env.BENCH_FREE_PERSON, 'Bench (no limits)')).key
process.send({ port: app.server.address().port, key, freeKey, cookie: `${app.cookieNames.session}=${app.signCookie(sessionId)}` })
// The longest the event loop was held, per bench phase: bench/run.ts asks for it and resets it.
reportEventLoop('gateway')
const stop = () => { app.close().finally(() => process.exit(0)) }
process.on('disconnect', stop)
process.on('SIGTERM', stop)
