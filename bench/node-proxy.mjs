// Baseline: Node's own minimal proxy, the ceiling a Node gateway can reach. node:http in front,
// an undici Pool behind, one fixed header injected (the upstream's token), the body streamed
// both ways, nothing else: no auth, no log line, no metrics. Started by bench/run.ts.
import { createServer } from 'node:http'
import { Pool } from 'undici'
import { reportEventLoop } from './event-loop.mjs'

const upstream = new URL(process.env.BENCH_UPSTREAM_URL)
const pool = new Pool(upstream.origin, { connections: null, keepAliveTimeout: 30_000 })
const authorization = `Bearer ${process.env.BENCH_TOKEN}`

const server = createServer((request, response) => {
  const headers = { ...request.headers, authorization }
  delete headers.host
  delete headers.connection
  pool.dispatch({ method: request.method, path: request.url, headers, body: request }, {
    onRequestStart () {},
    onResponseStart (controller, statusCode, upstreamHeaders) {
      delete upstreamHeaders.connection
      delete upstreamHeaders['keep-alive']
      delete upstreamHeaders['transfer-encoding']
      response.writeHead(statusCode, upstreamHeaders)
      response.on('drain', () => controller.resume())
      response.on('close', () => { if (!response.writableFinished) controller.abort(new Error('client left')) })
    },
    onResponseData (controller, chunk) { if (!response.write(chunk)) controller.pause() },
    onResponseEnd () { response.end() },
    onResponseError (_controller, error) {
      if (!response.headersSent) response.writeHead(502).end(String(error.message))
      else response.destroy()
    },
  })
})
server.keepAliveTimeout = 72_000
// Its event-loop delay, per phase: the baseline for the gateway's (a process saturated by wrk's 50 connections waits for each batch of them).
reportEventLoop('node minimal proxy')
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
const stop = () => { server.close(); pool.close().finally(() => process.exit(0)) }
process.on('disconnect', stop)
process.on('SIGTERM', stop)
