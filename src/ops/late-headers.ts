import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'

/** Adds a header decided only once the request has been handled (a stale cookie to clear, a drain under way). */
export type LateHeader = (request: FastifyRequest, reply: FastifyReply) => void

declare module 'fastify' {
  interface FastifyInstance {
    /** Plugins add theirs; every reply gets them, however it is written. */
    lateHeaders: LateHeader[]
    /** Applies the late headers to `reply`: for a route that writes its response itself (a hijacked reply skips onSend). */
    finishHeaders: (request: FastifyRequest, reply: FastifyReply) => void
  }
}

/** Late headers: one onSend hook for the replies Fastify sends, `finishHeaders` for the ones a route writes itself. */
export default fp(async function lateHeadersPlugin (app) {
  const lateHeaders: LateHeader[] = []
  const finishHeaders = (request: FastifyRequest, reply: FastifyReply): void => {
    for (const add of lateHeaders) add(request, reply)
  }
  app.decorate('lateHeaders', lateHeaders)
  app.decorate('finishHeaders', finishHeaders)
  app.addHook('onSend', (request, reply, payload, done) => {
    finishHeaders(request, reply)
    done(null, payload)
  })
}, { name: 'gemgate-late-headers' })
