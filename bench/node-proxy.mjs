// Baseline: Node's own minimal proxy, the ceiling a Node gateway can reach. node:http in front,
// an undici Pool behind, one fixed header injected (the upstream's token), the body streamed
// both ways, nothing else: no auth, no log line, no metrics. Started by bench/run.ts.
// With BENCH_UPSTREAM_CA_FILE (the held phase) the upstream is a TLS one spoken to over HTTP/2
// with node:http2 itself, a session per 100 streams (as Google allows): what a held stream costs
// a Node process at all.
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { connect, constants } from 'node:http2'
import { Pool } from 'undici'
import { reportEventLoop } from './event-loop.mjs'

const upstream = new URL(process.env.BENCH_UPSTREAM_URL)
const authorization = `Bearer ${process.env.BENCH_TOKEN}`
const ca = process.env.BENCH_UPSTREAM_CA_FILE
/** Headers that belong to one HTTP/1.1 hop only, in either direction. */
const HOP = ['connection', 'keep-alive', 'transfer-encoding', 'host', 'upgrade', 'proxy-connection']

function viaPool () {
  const pool = new Pool(upstream.origin, { connections: null, keepAliveTimeout: 30_000 })
  const handle = (request, response) => {
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
  }
  return { handle, close: async () => await pool.close() }
}

function viaHttp2 () {
  const sessions = []
  const ready = () => {
    let entry = sessions.find((one) => one.active < 100 && !one.session.closed && !one.session.destroyed)
    if (entry === undefined) {
      entry = { session: connect(upstream.origin, { ca: readFileSync(ca, 'utf8') }), active: 0 }
      entry.session.on('error', () => {})
      entry.session.on('close', () => { sessions.splice(sessions.indexOf(entry), 1) })
      sessions.push(entry)
    }
    return entry
  }
  const handle = (request, response) => {
    const entry = ready()
    const headers = { ...request.headers, authorization, ':method': request.method, ':path': request.url }
    for (const name of HOP) delete headers[name]
    entry.active++
    const stream = entry.session.request(headers)
    stream.once('close', () => { entry.active-- })
    stream.on('error', () => { if (!response.headersSent) response.writeHead(502).end(); else response.destroy() })
    stream.on('response', (upstreamHeaders) => {
      const status = upstreamHeaders[':status']
      for (const name of Object.keys(upstreamHeaders)) if (name.startsWith(':') || HOP.includes(name)) delete upstreamHeaders[name]
      response.writeHead(status, upstreamHeaders)
      stream.pipe(response)
    })
    response.on('close', () => { if (!response.writableFinished) stream.close(constants.NGHTTP2_CANCEL) })
    request.pipe(stream)
  }
  return { handle, close: async () => { for (const { session } of sessions) session.close() } }
}

const proxy = ca === undefined ? viaPool() : viaHttp2()
const server = createServer(proxy.handle)
server.keepAliveTimeout = 72_000
// Its event-loop delay, per phase: the baseline for the gateway's (a process saturated by wrk's 50 connections waits for each batch of them).
reportEventLoop('node minimal proxy')
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
const stop = () => { server.close(); proxy.close().finally(() => process.exit(0)) }
process.on('disconnect', stop)
process.on('SIGTERM', stop)
