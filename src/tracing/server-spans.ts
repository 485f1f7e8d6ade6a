import { createHash } from 'node:crypto'
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace, type Span } from '@opentelemetry/api'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { TRACER_NAME } from './sdk.js'

/** Hex characters of the person id's hash put on a span: enough to follow one person, not to find them. */
const PERSON_HASH_LENGTH = 16

/** The person on a span: a hash of the person id, so traces never carry an email or a subject. */
export function personHash (personId: string): string {
  return createHash('sha256').update(personId).digest('hex').slice(0, PERSON_HASH_LENGTH)
}

function finish (spans: WeakMap<FastifyRequest, Span>, request: FastifyRequest, reply: FastifyReply | undefined): void {
  const span = spans.get(request)
  if (span === undefined) return
  spans.delete(request)
  const route = request.routeOptions.url
  if (route !== undefined) {
    span.updateName(`${request.method} ${route}`)
    span.setAttribute('http.route', route)
  }
  if (request.identity !== null) {
    span.setAttribute('gemgate.person.hash', personHash(request.identity.personId))
    span.setAttribute('gemgate.credential', request.identity.via)
  }
  if (reply === undefined) span.setAttribute('gemgate.aborted', true)
  else {
    span.setAttribute('http.response.status_code', reply.statusCode)
    if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR })
  }
  span.end()
}

/**
 * One SERVER span per request, continuing the caller's W3C trace when it sent `traceparent`.
 * The rest of the request (handler, store, upstream call, token refresh) runs inside the
 * span's context, so what it records becomes children.
 */
export function addServerSpans (app: FastifyInstance): void {
  const tracer = trace.getTracer(TRACER_NAME)
  const spans = new WeakMap<FastifyRequest, Span>()
  app.addHook('onRequest', (request, _reply, done) => {
    const parent = propagation.extract(ROOT_CONTEXT, request.headers)
    const span = tracer.startSpan(request.method, {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': request.method, 'url.path': request.url.split('?')[0]!, 'gemgate.request_id': request.id },
    }, parent)
    spans.set(request, span)
    context.with(trace.setSpan(parent, span), done)
  })
  app.addHook('onResponse', (request, reply, done) => {
    finish(spans, request, reply)
    done()
  })
  app.addHook('onRequestAbort', (request, done) => {
    finish(spans, request, undefined)
    done()
  })
}
