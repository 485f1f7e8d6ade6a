import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Dispatcher } from 'undici'
import type { Identity } from '../auth/identity.js'
import type { Admission } from '../policy/plugin.js'
import { isWrite } from '../policy/routes.js'
import { trackStreamedAnswer } from '../connections/streams.js'
import { BadRequestError, UnauthenticatedError } from '../errors.js'
import type { RequestBody } from '../proxy/body.js'
import type { BodySink, UpstreamExchange, UpstreamHead } from '../proxy/exchange.js'
import { ClientWatch, writeToClient } from '../proxy/client.js'
import { clientResponseHeaders, upstreamRequestHeaders } from '../proxy/headers.js'
import { upstreamTarget } from '../proxy/target.js'
import { createUpstreamPool, dispatchUpstream, upstreamFailure } from '../proxy/upstream.js'
import { bareModelName, bodyAsRead, jsonObject } from '../policy/request-body.js'
import { METERED_CALLS } from './budget.js'
import { OpenAiUsageReader } from './usage.js'

/** The OpenAI-compatible models.list. */
const MODEL_LIST = /^\/[^/]+\/openai\/models\/?$/i

/** OpenAI-compatible calls that cost nothing even when posted: uploading a file (a batch's input). */
const FREE_CALLS = /^files(?:\/|$)/

/** Largest OpenAI request body taken (chat histories with inline images are big; it is read whole to add `include_usage`). */
export const MAX_OPENAI_BODY_BYTES = 32 * 1024 * 1024
const NO_BODY_STATUSES = new Set([204, 304])

/** A request body as forwarded: possibly with `stream_options.include_usage` added, and whether the client asked for usage. */
interface Prepared {
  body: Buffer | null
  model: string | undefined
  /** The gateway asked for the usage chunk, not the client: it is taken out of the answer. */
  strip: boolean
}

/**
 * A request body as the gateway reads it: its `model` (without `models/`), and the body to
 * forward, a JSON one as read ({@link bodyAsRead}: a model named twice must reach Google as the
 * one the allow-list checked and the reservation priced).
 */
function readBody (raw: Buffer | undefined): { model: string | undefined, body: RequestBody } {
  if (raw === undefined) return { model: undefined, body: { kind: 'none' } }
  const json = jsonObject(raw)
  if (json === undefined) return { model: undefined, body: { kind: 'kept', bytes: raw } }
  return { model: bareModelName(json.model), body: { kind: 'kept', bytes: bodyAsRead(json) } }
}

/** Adds `stream_options.include_usage` to a streamed request that lacks it, so the stream reports its usage. */
export function prepareBody (raw: Buffer | undefined): Prepared {
  if (raw === undefined || raw.length === 0) return { body: null, model: undefined, strip: false }
  let parsed: Record<string, unknown>
  try {
    parsed = JSON.parse(raw.toString('utf8')) as Record<string, unknown>
  } catch {
    return { body: raw, model: undefined, strip: false }
  }
  const model = typeof parsed?.model === 'string' ? parsed.model.replace(/^models\//, '') : undefined
  const options = parsed?.stream_options as { include_usage?: unknown } | undefined
  if (parsed?.stream !== true || options?.include_usage === true) return { body: raw, model, strip: false }
  return { body: Buffer.from(JSON.stringify({ ...parsed, stream_options: { ...options, include_usage: true } })), model, strip: true }
}

/**
 * Google's OpenAI-compatible endpoint, `/v1beta/openai/*`, for the official `openai` clients
 * given the gateway as baseURL and a gateway key as apiKey: forwarded with the person's token
 * (or UPSTREAM_API_KEY, for the `openai` surface), usage metered from the OpenAI-shaped `usage`.
 * Its own route, not the Gemini proxy's: the body is read whole (to ask for the usage chunk) and
 * the streamed answer is rewritten (to take that chunk out again when the client did not ask).
 */
export default async function openAiPlugin (app: FastifyInstance): Promise<void> {
  const { upstream, publicUrl } = app.config
  const apiKey = upstream.apiKeySurfaces.includes('openai') ? upstream.apiKey : undefined
  const pool = await createUpstreamPool(upstream)
  app.addHook('onClose', async () => { await pool.close() })
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_OPENAI_BODY_BYTES }, (_request, body, done) => { done(null, body) })

  async function send (request: FastifyRequest, identity: Identity, body: Buffer | null, force: boolean): Promise<UpstreamExchange> {
    const target = upstreamTarget(request.raw.url ?? '')
    const accessToken = apiKey === undefined ? await app.vault.accessToken(identity.personId, { force }) : ''
    const headers = upstreamRequestHeaders(request.headers, { accessToken, requestId: request.id, quotaProject: upstream.quotaProject })
    if (apiKey !== undefined) {
      delete headers.authorization
      headers['x-goog-api-key'] = apiKey
    }
    // Read as it passes: the answer must not come compressed.
    headers['accept-encoding'] = 'identity'
    if (body === null) delete headers['content-length']
    else headers['content-length'] = String(body.length)
    return dispatchUpstream(pool, { method: request.method as Dispatcher.HttpMethod, path: target.path + target.search, headers, body, idempotent: true })
  }

  async function headOf (exchange: UpstreamExchange, request: FastifyRequest): Promise<UpstreamHead> {
    try {
      return await exchange.head
    } catch (error) {
      throw upstreamFailure(error, request.id)
    }
  }

  /**
   * Chat completions and embeddings are reserved ahead like generateContent (RPM, tokens and
   * cost; their output cap lowered to what the budgets pay for). Any other POST (images, batches)
   * cannot be priced ahead, nor any other write (PUT, PATCH): a request against the rates, refused
   * under a token or dollar limit.
   * The rest (models, files) only have their model checked, and are charged once their usage is
   * known.
   */
  async function admitted (request: FastifyRequest<{ Body: Buffer | undefined }>, reply: FastifyReply, identity: Identity): Promise<Admission> {
    const path = upstreamTarget(request.raw.url ?? '').path
    const { model, body } = readBody(request.body)
    const call = path.replace(/^\/[^/]+\/openai\//, '')
    const metered = METERED_CALLS[call]
    if (metered === undefined && isWrite(request.method) && !FREE_CALLS.test(call)) {
      // A body without a readable model is checked as none: under an allow-list, refused.
      return await app.policy.admitUnpriced(reply, identity, { model: model ?? '(none)', what: `openai/${call}` }, body)
    }
    if (metered !== undefined) {
      // Unread, it would go to Google unreserved and past the model allow-list; Google refuses a body without a model anyway.
      if (model === undefined) throw new BadRequestError('The gateway reads the model from the body: send uncompressed JSON that names a model.')
      return await app.policy.admitCall(request, reply, identity, { model, generating: metered.generating }, body, metered.shape)
    }
    // The policy's model allow-list reads the model from the body here.
    await app.policy.admit(request, reply, identity, path, body)
    return { body, settle: (usage, served) => { app.policy.recordUsage(identity, served ?? 'unknown', usage) } }
  }

  function sink (identity: Identity, prepared: Prepared, admission: Admission, head: UpstreamHead, response: ServerResponse): BodySink {
    const contentType = String(head.headers['content-type'] ?? '')
    const metered = head.statusCode >= 200 && head.statusCode < 300
    const reader = metered ? new OpenAiUsageReader(contentType.startsWith('text/event-stream'), prepared.strip) : undefined
    let recorded = false
    const record = (): void => {
      const observed = reader?.observed
      if (recorded || observed === undefined) return
      recorded = true
      // The same recorders as the Gemini proxy's: usage totals, and the policy's settlement, priced by the model Google says served.
      app.usage.record(identity.personId, prepared.model ?? observed.model, observed.usage)
      admission.settle(observed.usage, observed.model?.replace(/^models\//, '') ?? prepared.model)
    }
    return {
      data (chunk, resume) {
        const passed = reader === undefined ? chunk : reader.write(chunk)
        return passed.length === 0 || writeToClient(response, passed, resume)
      },
      end () {
        if (reader !== undefined) response.write(reader.end().rest)
        record()
        response.end()
        admission.ended?.(head.statusCode, true)
      },
      error () {
        record()
        response.destroy()
        admission.ended?.(head.statusCode, false)
      },
    }
  }

  function responseHeaders (reply: FastifyReply, head: UpstreamHead, rewritten: boolean): OutgoingHttpHeaders {
    const headers = { ...clientResponseHeaders(head.headers, publicUrl), ...reply.getHeaders() } as OutgoingHttpHeaders
    if (rewritten) delete headers['content-length']
    return headers
  }

  app.all('/v1beta/openai/*', async (request: FastifyRequest<{ Body: Buffer | undefined }>, reply) => {
    const identity = await app.identify(request)
    if (identity === null) throw new UnauthenticatedError(`Not signed in: send a gateway key as the OpenAI client's apiKey (Authorization: Bearer gk_…); create one at ${publicUrl}/auth/status.`)
    const admission = await admitted(request, reply, identity)
    try {
      await forward(request, reply, identity, admission)
    } catch (error) {
      // No answer came to read: the call is over, an error (see Admission.ended).
      admission.ended?.(500, false)
      throw error
    }
  })

  async function forward (request: FastifyRequest<{ Body: Buffer | undefined }>, reply: FastifyReply, identity: Identity, admission: Admission): Promise<void> {
    // Usage is asked of the body as forwarded: its output cap may have been lowered.
    const prepared = prepareBody(admission.body.kind === 'kept' ? admission.body.bytes : undefined)
    const response = reply.raw
    const client = new ClientWatch(response)
    // A call read to its end (admission.ended) goes on when its client leaves: Google bills it whole.
    const follow = (exchange: UpstreamExchange): UpstreamExchange => {
      if (admission.ended === undefined) client.follow(exchange)
      return exchange
    }
    let exchange = follow(await send(request, identity, prepared.body, false))
    let head = await headOf(exchange, request)
    if (head.statusCode === 401 && apiKey === undefined) {
      exchange.discard()
      exchange = follow(await send(request, identity, prepared.body, true))
      head = await headOf(exchange, request)
    }
    reply.hijack()
    if (response.destroyed) {
      // The client left while Google worked on a call read to its end: its answer goes to the usage reader alone.
      exchange.pipe(sink(identity, prepared, admission, head, response))
      return
    }
    app.finishHeaders(request, reply)
    if (request.method === 'GET' && head.statusCode === 200 && MODEL_LIST.test(upstreamTarget(request.raw.url ?? '').path)) {
      // models.list shows only the models the policy lets this caller use, like Gemini's own.
      const list = jsonObject(await exchange.read())
      const data = Array.isArray(list?.data) ? list.data as Array<{ id?: unknown }> : []
      const body = JSON.stringify({ ...list, data: data.filter((model) => typeof model.id === 'string' && app.policy.allows(identity, model.id)) })
      response.writeHead(200, { ...responseHeaders(reply, head, true), 'content-length': Buffer.byteLength(body) })
      response.end(body)
      return
    }
    response.writeHead(head.statusCode, responseHeaders(reply, head, prepared.strip))
    if (request.method === 'HEAD' || NO_BODY_STATUSES.has(head.statusCode)) {
      exchange.discard()
      response.end()
      return
    }
    // A streamed answer ends with its person's sign-in, like the Gemini path's.
    trackStreamedAnswer(app, identity, head.headers['content-type'], response)
    exchange.pipe(sink(identity, prepared, admission, head, response))
  }
}
