import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { PersonCache, PersonChanges } from '../store/cache.js'

/** Who a request acts for, once a session cookie, gateway key or assertion proved it. */
export interface Identity {
  /** A hash of issuer + sub: the key of everything stored for this person. */
  personId: string
  sub: string
  email: string
  name: string
  via: 'session' | 'key' | 'assertion' | 'ephemeral'
  sessionId?: string
  keyId?: string
  /** The gateway ephemeral token (its id, never the secret) that opened a Live session. */
  ephemeralTokenId?: string
}

/**
 * Finds the person behind one kind of credential. Answers null when the request does not carry
 * that kind; throws (or rejects with) UnauthenticatedError when it carries one that is bad
 * (revoked, expired). Answers synchronously when it can (no credential of its kind, or one
 * found in the cache): the steady state of every API call costs no promise per resolver.
 */
export type CredentialResolver = (request: FastifyRequest) => Identity | null | Promise<Identity | null>

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `identify`; null while nobody is identified. */
    identity: Identity | null
  }
  interface FastifyInstance {
    /** Resolvers tried in order by `identify`: session cookie, gateway key, assertion. */
    credentialResolvers: CredentialResolver[]
    /** Identifies the caller with the first resolver that recognises a credential, and remembers it on the request. */
    identify: (request: FastifyRequest) => Promise<Identity | null>
    /** Announces changes to a person's sessions, keys and tokens to every replica's caches. */
    personChanges: PersonChanges
    /**
     * Credentials recently proven (`cookie:<signed session cookie>`, `key:<hash>`, `assertion:<jwt>`) and whom they identify, so the
     * steady state costs no store round trip; dropped per person on any announced change.
     */
    identityCache: PersonCache<Identity>
  }
}

/** The identity seam: each credential kind registers a resolver; routes call `identify`. */
export default fp(async function identityPlugin (app) {
  app.decorateRequest('identity', null)
  app.decorate('credentialResolvers', [] as CredentialResolver[])
  const changes = new PersonChanges(app.store)
  app.decorate('personChanges', changes)
  app.decorate('identityCache', new PersonCache<Identity>(changes))
  // Before listening: until the replica hears the others' announcements, nothing is served from a cache.
  app.addHook('onReady', async () => { await changes.start() })
  app.decorate('identify', async (request: FastifyRequest) => {
    if (request.identity !== null) return request.identity
    for (const resolve of app.credentialResolvers) {
      const found = resolve(request)
      const identity = found instanceof Promise ? await found : found
      if (identity !== null) {
        request.identity = identity
        return identity
      }
    }
    return null
  })
}, { name: 'gemgate-identity' })
