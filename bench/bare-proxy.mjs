// Baseline (c): a bare @fastify/http-proxy in front of the fake upstream, with no
// authentication, no logging and no metrics: the floor of what a Fastify proxy costs.
// The client sends the upstream's token itself. Started by bench/run.ts.
import fastify from 'fastify'
import httpProxy from '@fastify/http-proxy'

const app = fastify({ logger: false })
await app.register(httpProxy, { upstream: process.env.BENCH_UPSTREAM_URL, prefix: '/v1beta', rewritePrefix: '/v1beta' })
await app.listen({ port: 0, host: '127.0.0.1' })
process.send({ port: app.server.address().port })
const stop = () => { app.close().finally(() => process.exit(0)) }
process.on('disconnect', stop)
process.on('SIGTERM', stop)
