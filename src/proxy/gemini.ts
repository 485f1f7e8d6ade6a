import type { IncomingMessage, ServerResponse } from 'node:http'
import { Counter } from 'prom-client'
import type { Dispatcher } from 'undici'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Identity } from '../auth/identity.js'
import type { Admission } from '../policy/plugin.js'
import { html } from '../auth/pages.js'
import { trackStreamedAnswer } from '../connections/streams.js'
import { UnauthenticatedError } from '../errors.js'
import { bodyForUpstream, readRequestBody } from './body.js'
import { answerHeaders, upstreamRequestHeaders } from './headers.js'
import { API_PREFIXES, upstreamTarget, type UpstreamTarget } from './target.js'
import { ClientWatch, writeToClient } from './client.js'
import { fastRoute, serveFast, type FastPathDeps, type HandedOver } from './fast-path.js'
import { type BodySink, type UpstreamExchange, type UpstreamHead } from './exchange.js'
import { createUpstreamPool, dispatchUpstream, upstreamFailure } from './upstream.js'
import { loadUsage, modelInPath, type PersonUsage } from './usage.js'
import { UsageTap, type ObservedUsage } from './usage-tap.js'

const METERED_TYPES = /^(application\/json|text\/event-stream)\b/i
const NO_BODY_STATUSES = new Set([204, 304])

/** The upstream's status and headers, or the gateway's 502/504 when it failed first (499 when the client left). */
async function headOf (exchange: UpstreamExchange, request: FastifyRequest, client: ClientWatch): Promise<UpstreamHead> {
  try {
    return await exchange.head
  } catch (error) {
    client.check()
    throw upstreamFailure(error, request.id)
  }
}

function usageSection (usage: PersonUsage) {
  const rows = Object.entries(usage.byModel).sort(([a], [b]) => a.localeCompare(b))
    .map(([model, counts]) => html`<tr><td><code>${model}</code></td><td>${counts.requests}</td><td>${counts.prompt}</td><td>${counts.candidates}</td><td>${counts.total}</td></tr>`)
  return html`<section class="card" id="usage"><h2>Your usage</h2>
${rows.length === 0 ? html`<p class="muted">No metered Gemini calls yet.</p>` : html`<table><thead><tr><th>Model</th><th>Calls</th><th>Prompt tokens</th><th>Answer tokens</th><th>Total tokens</th></tr></thead>
<tbody>${rows}</tbody></table>`}</section>`
}

/**
 * The Gemini traffic path: /v1beta/*, /v1/*, /v1alpha/*, /upload/* forwarded with the same path
 * and query to UPSTREAM_URL, the caller's credentials swapped for the person's access token,
 * bodies streamed both ways, usage metered on the side. Built on undici directly rather than
 * @fastify/reply-from: the upstream call must be abortable before its headers arrive (a client
 * that leaves during a minutes-long generation), be sent a second time after a 401 with a kept
 * body, and verify TLS, none of which reply-from does by default.
 */
export default async function geminiProxyPlugin (app: FastifyInstance): Promise<void> {
  const { upstream, publicUrl } = app.config
  const pool = await createUpstreamPool(upstream)
  app.addHook('onClose', async () => { await pool.close() })
  // Shared with the Live relay and the OpenAI endpoint (proxy/usage-plugin).
  const usage = app.usage
  const retries = new Counter({
    name: 'gemgate_upstream_auth_retries_total',
    help: 'Upstream 401s answered with a forced token refresh and one retry.',
    registers: [app.metrics],
  })
  app.personDetails.push(async (personId) => ({ usage: await loadUsage(app.store, personId, usage.pendingFor(personId)) }))
  app.statusSections.push(async (identity) => usageSection(await loadUsage(app.store, identity.personId, usage.pendingFor(identity.personId))))

  // Bodies are forwarded as they arrive, never parsed: the request stream is the body.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, _payload, done) => { done(null) })

  /**
   * One call upstream with the person's token (refreshed first when `force`). Synchronous when the
   * token is cached in process (the steady state); otherwise the client is checked again once the
   * token is there: a refresh can take seconds, and a client that left meanwhile must not cost an
   * upstream call.
   */
  function attempt (request: FastifyRequest, client: ClientWatch, identity: Identity, target: UpstreamTarget, admission: Admission, force: boolean): UpstreamExchange | Promise<UpstreamExchange> {
    const cached = force ? undefined : app.vault.cachedAccessToken(identity.personId)
    if (cached !== undefined) return dispatch(request, client, target, admission, cached)
    return app.vault.accessToken(identity.personId, { force }).then((accessToken) => {
      client.check()
      return dispatch(request, client, target, admission, accessToken)
    })
  }

  function dispatch (request: FastifyRequest, client: ClientWatch, target: UpstreamTarget, admission: Admission, accessToken: string): UpstreamExchange {
    const exchange = dispatchUpstream(pool, {
      method: request.method as Dispatcher.HttpMethod,
      path: target.path + target.search,
      headers: upstreamRequestHeaders(request.headers, { accessToken, requestId: request.id, quotaProject: upstream.quotaProject }),
      body: bodyForUpstream(admission.body),
      idempotent: true,
    })
    // A call read to its end (admission.ended) goes on when its client leaves: Google bills it whole.
    if (admission.ended === undefined) client.follow(exchange)
    return exchange
  }

  /**
   * The usage callback: an answer's usage is known (at its end, or when it stopped early). Runs
   * at most once per answer, after the last byte went to the client; whatever settles a call's
   * cost against the person's budget is called from here.
   */
  function usageKnown (identity: Identity, target: UpstreamTarget, observed: ObservedUsage, admission: Admission): void {
    usage.record(identity.personId, modelInPath(target.path) ?? observed.modelVersion, observed.usage)
    admission.settle(observed.usage, observed.modelVersion, observed.name)
  }

  /**
   * Where the body goes: the client's socket as it arrives (paused while the socket is full), and a
   * usage tap beside it. A call read to its end goes on to the tap alone once its client left.
   */
  function clientSink (request: FastifyRequest, identity: Identity, target: UpstreamTarget, head: UpstreamHead, response: ServerResponse, admission: Admission): BodySink {
    const contentType = String(head.headers['content-type'] ?? '')
    const tap = head.statusCode >= 200 && head.statusCode < 300 && METERED_TYPES.test(contentType)
      ? new UsageTap(contentType, String(head.headers['content-encoding'] ?? ''), (observed) => { usageKnown(identity, target, observed, admission) })
      : undefined
    return {
      data (chunk, resume) {
        tap?.write(chunk)
        return writeToClient(response, chunk, resume)
      },
      end () {
        tap?.end()
        response.end()
        admission.ended?.(head.statusCode, true)
      },
      error (error) {
        tap?.close()
        if (!response.destroyed) request.log.warn({ err: error }, 'the upstream answer broke off')
        response.destroy()
        admission.ended?.(head.statusCode, false)
      },
    }
  }

  async function proxy (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const target = upstreamTarget(request.raw.url ?? '')
    const client = new ClientWatch(reply.raw)
    // Identity, admission and the token answer at once in the steady state: awaited only when they had to wait.
    const identified = app.identifyNow(request)
    const identity = identified instanceof Promise ? await identified : identified
    if (identity === null) {
      throw new UnauthenticatedError(`Not signed in: sign in at ${publicUrl}/auth/login, or send a gateway key in x-goog-api-key.`)
    }
    client.check()
    const admitted = app.policy.admit(request, reply, identity, target.path, await readRequestBody(request.raw, upstream.retryBodyLimitBytes))
    const admission = admitted instanceof Promise ? await admitted : admitted
    try {
      client.check()
      // Before forwarding: the caller is known and admitted, the body is read (or streaming) and nothing has gone upstream yet.
      const first = attempt(request, client, identity, target, admission, false)
      let exchange = first instanceof Promise ? await first : first
      let head = await headOf(exchange, request, client)
      // A token the vault thought valid was refused (revoked, rotated elsewhere): refresh once and retry, if the body can be sent again.
      if (head.statusCode === 401 && admission.body.kind !== 'streamed') {
        exchange.discard()
        retries.inc()
        exchange = await attempt(request, client, identity, target, admission, true)
        head = await headOf(exchange, request, client)
      }
      respond(request, reply, identity, target, exchange, head, admission)
    } catch (error) {
      // No answer came to read: the call is over, an error (the client gone before it went upstream, Google failing).
      admission.ended?.(500, false)
      throw error
    }
  }

  /** From here the gateway writes the response itself, straight from the upstream's chunks. */
  function respond (request: FastifyRequest, reply: FastifyReply, identity: Identity, target: UpstreamTarget, exchange: UpstreamExchange, head: UpstreamHead, admission: Admission): void {
    const response = reply.raw
    reply.hijack()
    // A client gone by now left a call read to its end (admission.ended): its answer goes to the usage tap alone.
    const present = !response.destroyed
    if (present) {
      app.finishHeaders(request, reply)
      response.writeHead(head.statusCode, answerHeaders(head.headers, reply.getHeaders(), publicUrl))
    }
    if (request.method === 'HEAD' || NO_BODY_STATUSES.has(head.statusCode)) {
      exchange.discard()
      response.end()
      admission.ended?.(head.statusCode, true)
      return
    }
    if (present) trackStreamedAnswer(app, identity, head.headers['content-type'], response)
    exchange.pipe(clientSink(request, identity, target, head, response, admission))
  }

  // What the fast path learned about a request it handed over with an error: its caller, the
  // headers it set for the answer (x-ratelimit-*: every answer carries them), and the error.
  const handedOver = new WeakMap<IncomingMessage, HandedOver>()
  async function proxyRoute (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const handed = handedOver.get(request.raw)
    if (handed === undefined) return await proxy(request, reply)
    request.identity = handed.identity
    // Fastify's own hooks set the request id and Vary again: theirs stand.
    for (const name in handed.headers) if (!reply.hasHeader(name)) reply.header(name, handed.headers[name])
    throw handed.error
  }
  for (const prefix of API_PREFIXES) app.all(`${prefix}*`, { config: { cors: true } }, proxyRoute)
  offerFastPath(app, {
    log: app.log,
    proxy,
    answered: (request, route, status, durationMs) => {
      app.logRequest({ requestId: request.id, method: request.method, url: request.url, route, status, durationMs, person: request.identity?.email ?? null, keyId: request.identity?.keyId ?? null, error: null, quiet: false })
      app.countRequest(request.method, route, status, durationMs / 1000)
    },
    handOver: (request, handed) => { handedOver.set(request, handed) },
  })
}

/**
 * Model calls skip Fastify's routing and hooks (src/proxy/fast-path.ts), except when tracing is
 * on (its spans live in Fastify's hooks) and once the app is closing (the drain's 503 is a hook's).
 */
function offerFastPath (app: FastifyInstance, deps: FastPathDeps): void {
  if (app.config.tracing.endpoint !== undefined) return
  let open = true
  app.addHook('preClose', async () => { open = false })
  app.fastPath.take = (request, response, fastify) => {
    const route = open ? fastRoute(request) : null
    if (route === null) return false
    serveFast(deps, request, response, route, fastify)
    return true
  }
}
