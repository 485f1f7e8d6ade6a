// OpenTelemetry tracing against an in-process OTLP/HTTP receiver on loopback: the gateway's
// own exporter (the official @opentelemetry packages) sends real OTLP JSON to it.
import { channel } from 'node:diagnostics_channel'
import { createServer, type IncomingMessage } from 'node:http'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { gunzipSync } from 'node:zlib'
import { trace } from '@opentelemetry/api'
import t, { type Test } from 'tap'
import { personHash } from '../src/tracing/server-spans.js'
import { ageTokens, keyHeaders, personWithKey, startProxyStack } from './helpers/person.js'

const GENERATE = '/v1beta/models/gemini-2.5-flash:generateContent'
const BODY = JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] })
const CALLER_TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const CALLER_SPAN_ID = '00f067aa0ba902b7'
const SPAN_WAIT_MS = 15_000
/** OTLP JSON span kinds. */
const KIND = { server: 2, client: 3 } as const

interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attributes?: Array<{ key: string, value: Record<string, unknown> }>
}

interface Receiver {
  url: string
  spans: OtlpSpan[]
  paths: string[]
}

/** A collector's OTLP/HTTP endpoint that keeps every span it is sent (JSON, gzip or not). */
async function startReceiver (t: Test): Promise<Receiver> {
  const receiver: Receiver = { url: '', spans: [], paths: [] }
  const server = createServer((request: IncomingMessage, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      receiver.paths.push(request.url ?? '')
      let body = Buffer.concat(chunks)
      if (request.headers['content-encoding'] === 'gzip') body = gunzipSync(body)
      const document = JSON.parse(body.toString()) as { resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: OtlpSpan[] }> }> }
      for (const resource of document.resourceSpans ?? []) {
        for (const scope of resource.scopeSpans ?? []) receiver.spans.push(...scope.spans ?? [])
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  receiver.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  return receiver
}

function attribute (span: OtlpSpan, key: string): unknown {
  const value = span.attributes?.find((entry) => entry.key === key)?.value
  return value === undefined ? undefined : Object.values(value)[0]
}

async function spansMatching (receiver: Receiver, predicate: (span: OtlpSpan) => boolean): Promise<OtlpSpan[]> {
  const deadline = Date.now() + SPAN_WAIT_MS
  while (Date.now() < deadline) {
    const found = receiver.spans.filter(predicate)
    if (found.length > 0) return found
    await sleep(100)
  }
  return []
}

t.test('with OTEL_EXPORTER_OTLP_ENDPOINT set, a request is a trace exported over OTLP', async (t) => {
  const receiver = await startReceiver(t)
  const stack = await startProxyStack(t, { env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: 'gemgate-test' } })
  // Tokens past their expiry: the call refreshes them first, inside the request.
  const holder = await personWithKey(stack, { expiresAt: Date.now() - 1_000 })
  await ageTokens(stack, holder.personId, 60_000)

  const response = await fetch(`${stack.url}${GENERATE}`, {
    method: 'POST',
    headers: { ...keyHeaders(holder), 'content-type': 'application/json', traceparent: `00-${CALLER_TRACE_ID}-${CALLER_SPAN_ID}-01` },
    body: BODY,
  })
  t.equal(response.status, 200)
  await response.arrayBuffer()

  const [server] = await spansMatching(receiver, (span) => span.kind === KIND.server && attribute(span, 'http.route') !== undefined &&
    String(attribute(span, 'http.route')).startsWith('/v1beta'))
  t.ok(server, 'a SERVER span for the API call')
  if (server === undefined) return
  t.equal(server.traceId, CALLER_TRACE_ID, 'continues the caller\'s trace')
  t.equal(server.parentSpanId, CALLER_SPAN_ID, 'as a child of the caller\'s span')
  t.equal(attribute(server, 'http.response.status_code'), 200)
  t.equal(attribute(server, 'gemgate.person.hash'), personHash(holder.personId), 'the person, hashed')
  t.notMatch(JSON.stringify(receiver.spans), holder.personId, 'never the person id itself')
  t.notMatch(JSON.stringify(receiver.spans), holder.key, 'never the key')

  const children = await spansMatching(receiver, (span) => span.traceId === CALLER_TRACE_ID && span.kind === KIND.client &&
    attribute(span, 'url.path') === GENERATE)
  const upstream = children[0]
  t.ok(upstream, 'a CLIENT span for the upstream call')
  t.equal(upstream?.parentSpanId, server.spanId, 'a child of the request')

  const [refresh] = await spansMatching(receiver, (span) => span.traceId === CALLER_TRACE_ID && span.name === 'token refresh')
  t.ok(refresh, 'a span for the token refresh, in the same trace')

  const seen = stack.gemini.requests.find((request) => request.path === GENERATE)
  t.match(seen?.headers.traceparent, new RegExp(`^00-${CALLER_TRACE_ID}-${upstream?.spanId ?? 'x'}-01$`),
    'the upstream gets traceparent naming the gateway\'s client span, not the caller\'s')
  t.ok(receiver.paths.every((path) => path === '/v1/traces'), 'spans go to /v1/traces')
})

t.test('without OTEL_EXPORTER_OTLP_ENDPOINT nothing is traced and a caller\'s traceparent passes through', async (t) => {
  const stack = await startProxyStack(t)
  const holder = await personWithKey(stack)
  const traceparent = `00-${CALLER_TRACE_ID}-${CALLER_SPAN_ID}-01`
  const response = await fetch(`${stack.url}${GENERATE}`, {
    method: 'POST', headers: { ...keyHeaders(holder), 'content-type': 'application/json', traceparent }, body: BODY,
  })
  t.equal(response.status, 200)
  await response.arrayBuffer()
  t.equal(stack.gemini.requests.at(-1)?.headers.traceparent, traceparent, 'unchanged')
  // No per-request work when off: nobody listens to undici's channels and no SDK is installed.
  t.equal(channel('undici:request:create').hasSubscribers, false, 'no subscriber on undici\'s channels')
  t.equal(trace.getTracerProvider().getTracer('x').startSpan('x').isRecording(), false, 'the API stays a no-op')
})
