import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Test } from 'tap'

/** Options for {@link startDiscovery}. */
export interface DiscoveryOptions {
  /** Hold every discovery answer until `release()` is called. */
  hold?: boolean
  /** Start without listening (the provider is down); `start()` brings it up on `port`. */
  down?: boolean
}

/** A bare OpenID provider that only serves its discovery document. */
export interface DiscoveryServer {
  /** `http://127.0.0.1:PORT`: the issuer identifier and OIDC_ISSUER. */
  readonly issuer: string
  readonly port: number
  /** Discovery requests received so far. */
  readonly requests: number
  /** Answers every held request; later requests are answered at once. */
  release(): void
  /** Resolves when at least `count` discovery requests have arrived. */
  requested(count?: number): Promise<void>
  stop(): Promise<void>
  start(): Promise<void>
}

function metadata (issuer: string): Record<string, unknown> {
  return {
    issuer,
    authorization_endpoint: `${issuer}/auth`,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/jwks`,
    response_types_supported: ['code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
  }
}

/**
 * Serves `/.well-known/openid-configuration` on a loopback port: enough for the gateway's
 * provider to count as loaded. It can be held (a slow provider) or stopped (a provider outage).
 */
export async function startDiscovery (t: Test, options: DiscoveryOptions = {}): Promise<DiscoveryServer> {
  let held = options.hold === true
  let requests = 0
  const waiting: Array<() => void> = []
  const arrivals: Array<() => void> = []

  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    if (request.url !== '/.well-known/openid-configuration') {
      response.writeHead(404).end()
      return
    }
    requests++
    for (const notify of arrivals.splice(0)) notify()
    const answer = (): void => {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(metadata(issuer)))
    }
    if (held) waiting.push(answer)
    else answer()
  })

  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  const issuer = `http://127.0.0.1:${port}`

  async function stop (): Promise<void> {
    if (!server.listening) return
    const closed = once(server, 'close')
    server.close()
    server.closeAllConnections()
    await closed
  }
  if (options.down === true) await stop()
  t.teardown(async () => {
    held = false
    for (const answer of waiting.splice(0)) answer()
    await stop()
  })

  return {
    issuer,
    port,
    get requests () { return requests },
    release () {
      held = false
      for (const answer of waiting.splice(0)) answer()
    },
    async requested (count = 1) {
      while (requests < count) await new Promise<void>((resolve) => arrivals.push(resolve))
    },
    stop,
    async start () {
      if (server.listening) return
      server.listen(port, '127.0.0.1')
      await once(server, 'listening')
    },
  }
}
