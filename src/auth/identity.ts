import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import type { Limits } from '../config/policy.js'
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
  /** When a session identity's session ends at the latest (ms since the epoch): SESSION_MAX_SECONDS after sign-in. */
  sessionEndsAt?: number
  keyId?: string
  /** Group names from OIDC_GROUPS_CLAIM at sign-in (policy rules match on them). */
  groups?: string[]
  /** Google's `hd` claim at sign-in: a domain for policy rules. */
  hostedDomain?: string
  /** A gateway key's own limits, narrower than its owner's. */
  keyLimits?: Limits
  /** The gateway ephemeral token (its id, never the secret) that opened a Live session. */
  ephemeralTokenId?: string
}

/**
 * Finds the person behind one kind of credential. Answers null when the request does not carry
 * that kind; throws (or rejects with) UnauthenticatedError when it carries one that is bad
 * (revoked, expired), which refuses the request whatever other credentials it carries. Answers synchronously when it can (no credential of its kind, or one
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
    /** Identifies the caller with the first resolver that recognises a credential (after every resolver had its say), and remembers it on the request. */
    identify: (request: FastifyRequest) => Promise<Identity | null>
    /** `identify`, answering synchronously when every resolver did (the steady state of an API call: no promise). */
    identifyNow: (request: FastifyRequest) => Identity | null | Promise<Identity | null>
    /** Announces changes to a person's sessions, keys and tokens to every replica's caches. */
    personChanges: PersonChanges
    /**
     * Credentials recently proven (`cookie:<signed session cookie>`, `key:<gateway key>`, `assertion:<jwt>`) and whom they identify, so the
     * steady state costs no store round trip; dropped per person on any announced change.
     */
    identityCache: PersonCache<Identity>
  }
}

/** The identity seam: each credential kind registers a resolver; routes call `identify`. */
export default fp(async function identityPlugin (app) {
  app.decorateRequest('identity', null)
  app.decorate('credentialResolvers', [] as CredentialResolver[])
  const changes = new PersonChanges(app.store, { outageGraceMs: app.config.storeOutageGraceSeconds * 1000 })
  app.decorate('personChanges', changes)
  app.decorate('identityCache', new PersonCache<Identity>(changes))
  // Not awaited: a replica started while Redis is down starts, reports not ready, and subscribes
  // once Redis answers; until it hears the others' announcements, nothing is served from a cache.
  app.addHook('onReady', async () => {
    changes.start().catch((error: unknown) => { app.log.debug({ err: error }, 'no longer waiting for change announcements') })
  })
  // Every resolver runs, not just until one answers: a bad credential of any kind (a revoked key
  // beside a good session cookie) refuses the request rather than being outvoted by another.
  // Resolvers from `index` on, `identity` being what the earlier ones found. One that has to read
  // the store is awaited (whatever was found before it: a bad credential still refuses) and the
  // round goes on from the next; while each answers at once, so does the round.
  const identifyFrom = (request: FastifyRequest, identity: Identity | null, index: number): Identity | null | Promise<Identity | null> => {
    for (; index < app.credentialResolvers.length; index++) {
      const found = app.credentialResolvers[index]!(request)
      if (found instanceof Promise) {
        const next = index + 1
        return found.then((resolved) => identifyFrom(request, identity ?? resolved, next))
      }
      identity ??= found
    }
    request.identity = identity
    return identity
  }
  const identifyNow = (request: FastifyRequest): Identity | null | Promise<Identity | null> =>
    request.identity !== null ? request.identity : identifyFrom(request, null, 0)
  app.decorate('identifyNow', identifyNow)
  app.decorate('identify', async (request: FastifyRequest) => await identifyNow(request))
}, { name: 'gemgate-identity' })
