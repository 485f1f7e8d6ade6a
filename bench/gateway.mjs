// The gateway under test, from the build in BENCH_BUILD (plain JavaScript: no TypeScript loader
// in the measured process, so its RSS is the gateway's). Logs at info as in production (stdout
// goes to /dev/null). Seeds one person the way a sign-in would leave them: a profile, tokens with
// a far-future expiry, a gateway key and a session, and reports them to bench/run.ts.
import { join } from 'node:path'
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks'
import { pathToFileURL } from 'node:url'

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
const loop = monitorEventLoopDelay({ resolution: 5 })
loop.enable()
// Garbage-collection pauses over the same span, on stderr (the bench's output): the first suspect of a stall.
const GC_KINDS = { 1: 'scavenge', 2: 'mark-compact', 4: 'incremental', 8: 'weak-callbacks' }
let gc = { count: 0, totalMs: 0, maxMs: 0, maxKind: '' }
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gc.count++
    gc.totalMs += entry.duration
    if (entry.duration > gc.maxMs) gc = { ...gc, maxMs: entry.duration, maxKind: GC_KINDS[entry.detail?.kind] ?? String(entry.detail?.kind) }
  }
}).observe({ entryTypes: ['gc'] })
process.on('message', (message) => {
  if (message?.type !== 'event-loop') return
  const maxMs = Math.round(loop.max / 1e5) / 10
  process.send({ type: 'event-loop', maxMs, p99Ms: Math.round(loop.percentile(99) / 1e5) / 10 })
  if (gc.count > 0) process.stderr.write(`gateway: event loop max ${maxMs} ms; gc ${gc.count} pauses, ${Math.round(gc.totalMs)} ms in all, longest ${gc.maxMs.toFixed(1)} ms (${gc.maxKind}); heap ${Math.round(process.memoryUsage().heapUsed / 1e6)} MB\n`)
  loop.reset()
  gc = { count: 0, totalMs: 0, maxMs: 0, maxKind: '' }
})
const stop = () => { app.close().finally(() => process.exit(0)) }
process.on('disconnect', stop)
process.on('SIGTERM', stop)
