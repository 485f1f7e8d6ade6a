import fp from 'fastify-plugin'

/**
 * OpenTelemetry tracing, only when OTEL_EXPORTER_OTLP_ENDPOINT is set: a span per request with
 * the upstream and token-endpoint calls as children, W3C `traceparent` passed on, exported over
 * OTLP/HTTP. Unset, this plugin adds no hook and no subscriber, and does not even load the SDK.
 */
export default fp(async function tracingPlugin (app) {
  const { endpoint, serviceName } = app.config.tracing
  if (endpoint === undefined) return
  const [{ startTracing }, { addClientSpans }, { addServerSpans }] = await Promise.all([
    import('./sdk.js'), import('./client-spans.js'), import('./server-spans.js'),
  ])
  const stopTracing = startTracing({ endpoint, serviceName })
  const stopClientSpans = addClientSpans()
  addServerSpans(app)
  app.addHook('onClose', async () => {
    stopClientSpans()
    await stopTracing()
  })
  app.log.info({ endpoint }, 'tracing: exporting spans over OTLP/HTTP')
}, { name: 'gemgate-tracing' })
