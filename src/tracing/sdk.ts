import { context, propagation, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'

/** The path an OTLP/HTTP collector takes traces on, below OTEL_EXPORTER_OTLP_ENDPOINT. */
export const OTLP_TRACES_PATH = '/v1/traces'
/** How long finished spans wait to be sent together; short enough to see a request soon. */
export const DEFAULT_EXPORT_DELAY_MS = 1_000
/** The instrumentation scope every gateway span is recorded under. */
export const TRACER_NAME = 'gemgate'

/** What {@link startTracing} needs: where to send spans and under which service name. */
export interface TracingSettings {
  endpoint: string
  serviceName: string
  exportDelayMs?: number
}

/**
 * Installs the OpenTelemetry SDK as the process's global tracer provider, context manager
 * (AsyncLocalStorage, so a request's span follows its async work) and W3C propagator.
 * Globals, because code below the tracing plugin (the token refresh) records spans through
 * `@opentelemetry/api` alone, and without an SDK those calls cost nothing. Returns the undo.
 */
export function startTracing (settings: TracingSettings): () => Promise<void> {
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': settings.serviceName }),
    spanProcessors: [new BatchSpanProcessor({
      exporter: new OTLPTraceExporter({ url: `${settings.endpoint}${OTLP_TRACES_PATH}` }),
      scheduledDelayMillis: settings.exportDelayMs ?? DEFAULT_EXPORT_DELAY_MS,
    })],
  })
  const contextManager = new AsyncLocalStorageContextManager().enable()
  trace.setGlobalTracerProvider(provider)
  context.setGlobalContextManager(contextManager)
  propagation.setGlobalPropagator(new W3CTraceContextPropagator())
  return async () => {
    // Flush first: what the last requests recorded still goes out.
    await provider.shutdown()
    trace.disable()
    context.disable()
    propagation.disable()
  }
}
