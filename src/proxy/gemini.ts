import type { Readable } from 'node:stream'
import { Counter } from 'prom-client'
import type { Dispatcher } from 'undici'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Identity } from '../auth/identity.js'
import { html } from '../auth/pages.js'
import { UnauthenticatedError } from '../errors.js'
import { bodyForUpstream, readRequestBody, type RequestBody } from './body.js'
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.js'
import { API_PREFIXES, upstreamTarget, type UpstreamTarget } from './target.js'
import { createUpstreamPool, sendUpstream } from './upstream.js'
import { loadUsage, modelInPath, UsageRecorder, type PersonUsage } from './usage.js'
import { UsageTap } from './usage-tap.js'

const METERED_TYPES = /^(application\/json|text\/event-stream)\b/i
const NO_BODY_STATUSES = new Set([204, 304])

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
  const usage = new UsageRecorder(app.store, app.metrics, (error) => app.log.warn({ err: error }, 'usage not recorded'))
  // Before the store closes: the last interval's usage is written too.
  app.addHook('preClose', async () => { await usage.flush() })
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

  async function attempt (request: FastifyRequest, identity: Identity, target: UpstreamTarget, body: RequestBody, signal: AbortSignal, force: boolean): Promise<Dispatcher.ResponseData> {
    const accessToken = await app.vault.accessToken(identity.personId, { force })
    return await sendUpstream(pool, {
      method: request.method as Dispatcher.HttpMethod,
      path: target.path + target.search,
      headers: upstreamRequestHeaders(request.headers, { accessToken, requestId: request.id, quotaProject: upstream.quotaProject }),
      body: bodyForUpstream(body),
      signal,
    }, request.id)
  }

  function meter (identity: Identity, target: UpstreamTarget, response: Dispatcher.ResponseData, reply: FastifyReply): Readable {
    const contentType = String(response.headers['content-type'] ?? '')
    if (response.statusCode < 200 || response.statusCode >= 300 || !METERED_TYPES.test(contentType)) return response.body
    const tap = new UsageTap(contentType, String(response.headers['content-encoding'] ?? ''), (observed) => {
      usage.record(identity.personId, modelInPath(target.path) ?? observed.modelVersion, observed.usage)
    })
    tap.watch(response.body, reply.raw)
    return response.body
  }

  async function proxy (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const target = upstreamTarget(request.raw.url ?? '')
    const identity = await app.identify(request)
    if (identity === null) {
      throw new UnauthenticatedError(`Not signed in: sign in at ${publicUrl}/auth/login, or send a gateway key in x-goog-api-key.`)
    }
    const abort = new AbortController()
    reply.raw.once('close', () => { if (!reply.raw.writableFinished) abort.abort() })
    const body = await readRequestBody(request.raw, upstream.retryBodyLimitBytes)
    let response = await attempt(request, identity, target, body, abort.signal, false)
    // A token the vault thought valid was refused (revoked, rotated elsewhere): refresh once and retry, if the body can be sent again.
    if (response.statusCode === 401 && body.kind !== 'streamed') {
      await response.body.dump()
      retries.inc()
      response = await attempt(request, identity, target, body, abort.signal, true)
    }
    reply.code(response.statusCode)
    for (const [name, value] of Object.entries(clientResponseHeaders(response.headers, publicUrl))) {
      const existing = reply.getHeader(name)
      reply.header(name, name === 'vary' && existing !== undefined ? `${String(existing)}, ${String(value)}` : value)
    }
    if (request.method === 'HEAD' || NO_BODY_STATUSES.has(response.statusCode)) {
      await response.body.dump()
      return await reply.send()
    }
    return await reply.send(meter(identity, target, response, reply))
  }

  for (const prefix of API_PREFIXES) app.all(`${prefix}*`, proxy)
}
