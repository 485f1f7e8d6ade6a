import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { UnauthenticatedError } from '../errors.js'
import type { Identity } from './identity.js'

/** Adds fields about a person to /auth/me (usage counters, …); `identity` is the caller's, when there is one. */
export type PersonDetails = (personId: string, identity?: Identity) => Promise<Record<string, unknown>>

declare module 'fastify' {
  interface FastifyInstance {
    /** Contributions to /auth/me and the status page from other parts of the gateway. */
    personDetails: PersonDetails[]
    /** The identity of the caller, or UnauthenticatedError (401) naming where to sign in. */
    requireIdentity: (request: FastifyRequest) => Promise<Identity>
  }
}

/** GET /auth/me: who am I, never a token (/auth/verify, for front proxies, is in sidecar/verify). */
export default fp(async function mePlugin (app) {
  app.decorate('personDetails', [] as PersonDetails[])
  app.decorate('requireIdentity', async (request: FastifyRequest) => {
    const identity = await app.identify(request)
    if (identity === null) throw new UnauthenticatedError(`Not signed in: sign in at ${app.config.publicUrl}/auth/login or send a gateway key.`)
    return identity
  })

  app.get('/auth/me', async (request, reply) => {
    const identity = await app.requireIdentity(request)
    const record = await app.vault.load(identity.personId)
    const extras = await Promise.all(app.personDetails.map(async (details) => await details(identity.personId, identity)))
    reply.header('cache-control', 'no-store')
    return {
      sub: identity.sub,
      email: identity.email,
      name: identity.name,
      accessTokenExpiresAt: record === null ? null : new Date(record.expiresAt).toISOString(),
      sessionExpiresAt: identity.via === 'session' ? new Date(app.sessions.expiresAt(identity.sessionEndsAt)).toISOString() : null,
      ...Object.assign({}, ...extras),
    }
  })
}, { name: 'gemgate-me', dependencies: ['gemgate-sessions'] })
