import t from 'tap'
import { freePort } from './fixtures/ports.js'
import { startSidecarStack } from './helpers/sidecar.js'
import { startStack } from './helpers/stack.js'

// /metrics names every route, status and volume; /readyz tells which dependency is down. With
// METRICS_PORT set they leave the public port for a listener the operator keeps inside.
t.test('with METRICS_PORT, /metrics and /readyz answer only on the ops listener', async (t) => {
  const metricsPort = await freePort()
  const stack = await startStack(t, { env: { METRICS_PORT: String(metricsPort) } })
  t.equal(stack.config.metricsPort, metricsPort)
  // What src/main.ts does after the public listen.
  await stack.app.opsServer!.listen({ port: metricsPort, host: '127.0.0.1' })
  const ops = `http://127.0.0.1:${metricsPort}`

  for (const path of ['/metrics', '/readyz']) {
    const response = await fetch(`${stack.url}${path}`)
    t.equal(response.status, 404, `the public port answers 404 for ${path}`)
    t.match(await response.json(), { error: { code: 404, status: 'NOT_FOUND' } })
  }
  t.equal((await fetch(`${stack.url}/healthz`)).status, 200, 'the public port keeps /healthz (liveness reveals nothing)')

  const metrics = await fetch(`${ops}/metrics`)
  t.equal(metrics.status, 200)
  t.match(await metrics.text(), /gemgate_http_requests_total\{method="GET",route="\/healthz",status="200"\}/, 'the ops listener serves the public app\'s metrics')
  const ready = await fetch(`${ops}/readyz`)
  t.equal(ready.status, 200)
  t.match(await ready.json(), { status: 'ready', checks: { redis: 'ok', provider: 'ok' } })
  t.equal((await fetch(`${ops}/healthz`)).status, 200)
  for (const path of ['/auth/status', '/auth/login', '/v1beta/models']) {
    t.equal((await fetch(`${ops}${path}`, { redirect: 'manual' })).status, 404, `the ops listener serves nothing else (${path})`)
  }
})

t.test('with an app fronted and METRICS_PORT set, /metrics is neither served nor passed to the app', async (t) => {
  const stack = await startSidecarStack(t, { env: { METRICS_PORT: String(await freePort()) } })
  const { browser } = await stack.signIn()
  for (const path of ['/metrics', '/readyz']) {
    t.equal((await browser.fetch(path)).status, 404, path)
  }
  t.notOk(stack.echo.requests.some((request) => request.url.startsWith('/metrics') || request.url.startsWith('/readyz')), 'the app never saw them')
})

t.test('without METRICS_PORT, the public port serves them as before', async (t) => {
  const stack = await startStack(t, { memory: true })
  t.equal(stack.app.opsServer, null)
  t.equal((await fetch(`${stack.url}/metrics`)).status, 200)
  t.equal((await fetch(`${stack.url}/readyz`)).status, 200)
})
