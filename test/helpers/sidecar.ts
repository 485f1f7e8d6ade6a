import type { FastifyInstance } from 'fastify'
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose'
import type { Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { startEchoApp, type EchoApp, type EchoedRequest, type StartEchoAppOptions } from '../fixtures/echo-app.js'
import { freePort } from '../fixtures/ports.js'
import { startProxyStack, type ProxyStack, type ProxyStackOptions } from './person.js'
import { Browser } from './stack.js'

/** The public paths every sidecar stack serves signed out. */
export const PUBLIC_PATHS = '/public/,/favicon.ico'

/** A gateway fronting the echo app (and a fake Gemini), with a way to start more replicas. */
export interface SidecarStack extends ProxyStack {
  echo: EchoApp
  /** Another gateway on the same Redis and settings, on its own port. */
  replica: () => Promise<{ app: FastifyInstance, url: string }>
}

/** Options for {@link startSidecarStack}. */
export interface SidecarStackOptions extends ProxyStackOptions {
  echo?: StartEchoAppOptions
}

/** Starts the echo app, then the proxy stack with APP_UPSTREAM_URL pointing at it. */
export async function startSidecarStack (t: Test, options: SidecarStackOptions = {}): Promise<SidecarStack> {
  const echo = await startEchoApp(t, options.echo)
  const stack = await startProxyStack(t, { ...options, env: { APP_UPSTREAM_URL: echo.url, APP_PUBLIC_PATHS: PUBLIC_PATHS, ...options.env } })
  async function replica () {
    const app = await buildApp(stack.config)
    t.teardown(async () => { await app.close() })
    const port = await freePort()
    await app.listen({ port, host: '127.0.0.1' })
    return { app, url: `http://127.0.0.1:${port}` }
  }
  return { ...stack, echo, replica }
}

/** Headers a browser navigation sends. */
export const NAVIGATION = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8', 'sec-fetch-mode': 'navigate' }

/** Every value the app got for a header, matching its name in any case with `_` or `-`. */
export function headerValues (request: EchoedRequest, name: string): string[] {
  const wanted = name.toLowerCase().replace(/_/g, '-')
  return request.headers.filter(([seen]) => seen.toLowerCase().replace(/_/g, '-') === wanted).map(([, value]) => value)
}

/** The one value the app got for a header, or undefined (fails loudly when repeated). */
export function headerValue (request: EchoedRequest, name: string): string | undefined {
  const values = headerValues(request, name)
  if (values.length > 1) throw new Error(`the app got ${name} ${values.length} times: ${JSON.stringify(values)}`)
  return values[0]
}

/** Verifies an assertion against the JWKS a gateway publishes, as the app would. */
export async function verifyWithJwks (gatewayUrl: string, assertion: string, issuer: string): Promise<JWTPayload> {
  const response = await fetch(`${gatewayUrl}/.well-known/jwks.json`)
  if (response.status !== 200) throw new Error(`JWKS answered ${response.status}`)
  const jwks = await response.json() as JSONWebKeySet
  const { payload } = await jwtVerify(assertion, createLocalJWKSet(jwks), { issuer, algorithms: ['ES256'] })
  return payload
}

/** A browser signed in on one replica, carried over to another (same cookies). */
export function sameBrowserAt (browser: Browser, origin: string): Browser {
  const other = new Browser(origin)
  for (const [name, value] of browser.cookies) other.cookies.set(name, value)
  return other
}
