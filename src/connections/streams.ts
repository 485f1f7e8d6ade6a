import type { ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import type { Identity } from '../auth/identity.js'
import { identityStillValid } from './still-valid.js'

/** Answers that stay open while the upstream generates: Server-Sent Events. */
const STREAMED_TYPE = /^text\/event-stream\b/i

/**
 * Tracks a streamed answer (SSE) as a live connection of its person until it closes: if their
 * credential goes meanwhile, the response is destroyed, which cuts the client off mid-stream
 * (an incomplete answer, never one that looks whole) and aborts the upstream call.
 */
export function trackStreamedAnswer (app: FastifyInstance, identity: Identity, contentType: unknown, response: ServerResponse): void {
  if (!STREAMED_TYPE.test(String(contentType ?? ''))) return
  const untrack = app.liveConnections.add({
    personId: identity.personId,
    stillValid: async () => await identityStillValid(app, identity),
    end: () => { response.destroy() },
  })
  response.once('close', untrack)
}
