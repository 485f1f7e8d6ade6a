import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { SpanKind, SpanStatusCode, context, propagation, trace, type Span } from '@opentelemetry/api'
import { TRACER_NAME } from './sdk.js'

/** The part of undici's request object these spans read and change. */
interface UndiciRequest {
  method: string
  origin: string | URL
  path: string
  headers: Array<string | string[]>
  addHeader: (name: string, value: string) => unknown
}

const TRACE_HEADERS = new Set(['traceparent', 'tracestate'])

/** Replaces whatever trace headers the request carries (a client's, passed through) with ours. */
function propagate (request: UndiciRequest, span: Span): void {
  const carrier: Record<string, string> = {}
  propagation.inject(trace.setSpan(context.active(), span), carrier)
  for (let index = request.headers.length - 2; index >= 0; index -= 2) {
    if (TRACE_HEADERS.has(String(request.headers[index]).toLowerCase())) request.headers.splice(index, 2)
  }
  for (const [name, value] of Object.entries(carrier)) request.addHeader(name, value)
}

/**
 * A CLIENT span for every outgoing HTTP call made inside a traced request or refresh: the
 * Gemini upstream, the fronted app, the provider's token endpoint. They come from undici's
 * diagnostics channels (npm undici and Node's fetch publish them alike), so the proxy code
 * needs no hook of its own. Calls outside any span (start-up discovery) are left alone.
 * Returns the unsubscribe.
 */
export function addClientSpans (): () => void {
  const tracer = trace.getTracer(TRACER_NAME)
  const spans = new WeakMap<object, Span>()
  const handlers: Record<string, (message: unknown) => void> = {
    'undici:request:create': (message) => {
      const { request } = message as { request: UndiciRequest }
      if (trace.getSpan(context.active()) === undefined) return
      const origin = new URL(String(request.origin))
      const span = tracer.startSpan(request.method, {
        kind: SpanKind.CLIENT,
        attributes: { 'http.request.method': request.method, 'server.address': origin.hostname, 'url.path': request.path.split('?')[0]! },
      })
      spans.set(request, span)
      propagate(request, span)
    },
    'undici:request:headers': (message) => {
      const { request, response } = message as { request: object, response: { statusCode: number } }
      spans.get(request)?.setAttribute('http.response.status_code', response.statusCode)
    },
    'undici:request:trailers': (message) => {
      const { request } = message as { request: object }
      spans.get(request)?.end()
      spans.delete(request)
    },
    'undici:request:error': (message) => {
      const { request, error } = message as { request: object, error: Error }
      const span = spans.get(request)
      if (span === undefined) return
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.message })
      span.end()
      spans.delete(request)
    },
  }
  for (const [channel, handler] of Object.entries(handlers)) subscribe(channel, handler)
  return () => { for (const [channel, handler] of Object.entries(handlers)) unsubscribe(channel, handler) }
}
