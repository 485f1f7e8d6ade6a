// What bench/run.ts and bench/compare.ts both need to start a gateway and read what it costs.
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** A port nothing listens on now, on 127.0.0.1. */
export async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  return port
}

/** CPU seconds a process has used so far, all threads (Linux's /proc; NaN elsewhere). */
export function cpuSeconds (pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${String(pid)}/stat`, 'utf8').split(') ')[1]!.split(' ')
    // utime and stime, in clock ticks (100 a second on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return Number.NaN
  }
}

/** The first message a child sends (its port, its seeded key), or an error naming `what` if it exits first. */
export async function message<T> (child: ChildProcess, what: string): Promise<T> {
  const [first] = await Promise.race([
    once(child, 'message') as Promise<[T]>,
    once(child, 'exit').then(([code]) => { throw new Error(`${what} exited (${String(code)}) before it was ready`) }),
  ])
  return first
}

/**
 * The Node flags the gateway runs with in production: those of `npm start` (the image's CMD has
 * the same, test/production-install.test.ts), so every gateway here is measured as it is run.
 * BENCH_GATEWAY_NODE_FLAGS replaces them (an empty value: Node's defaults), to compare.
 */
export const GATEWAY_FLAGS = (process.env.BENCH_GATEWAY_NODE_FLAGS ?? startFlags()).split(' ').filter((flag) => flag !== '')

function startFlags (): string {
  const { scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  const flags = /^node ((?:--\S+ )*)dist\/main\.js$/.exec(scripts.start ?? '')
  if (flags === null) throw new Error(`package.json's start script is not "node [--flag …] dist/main.js": ${scripts.start ?? '(none)'}`)
  return flags[1]!.trim()
}

/**
 * The environment of a bench gateway (bench/gateway.mjs): the build in `build`, on `port`, the
 * fake upstream at `upstreamUrl` as both its IdP and its Gemini, `redisUrl`, logging at info as
 * in production, fresh secrets.
 */
export function benchGatewayEnv (settings: { build: string, token: string, port: number, upstreamUrl: string, redisUrl: string }): Record<string, string> {
  return {
    BENCH_BUILD: settings.build,
    BENCH_TOKEN: settings.token,
    PORT: String(settings.port),
    HOST: '127.0.0.1',
    PUBLIC_URL: `http://127.0.0.1:${settings.port}`,
    OIDC_ISSUER: settings.upstreamUrl,
    OIDC_CLIENT_ID: 'bench',
    OIDC_CLIENT_SECRET: 'bench-secret',
    COOKIE_SECRETS: randomBytes(32).toString('base64url'),
    TOKEN_ENCRYPTION_KEYS: randomBytes(32).toString('base64'),
    ALLOWED_EMAIL_DOMAINS: 'example.com',
    REDIS_URL: settings.redisUrl,
    UPSTREAM_URL: settings.upstreamUrl,
    LOG_LEVEL: 'info',
    // Unset (the default) measures the gateway as shipped, tracing off; set it to a collector to see tracing's cost.
    OTEL_EXPORTER_OTLP_ENDPOINT: process.env.BENCH_OTEL_ENDPOINT ?? '',
  }
}
