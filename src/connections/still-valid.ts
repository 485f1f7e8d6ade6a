import type { FastifyInstance } from 'fastify'
import type { Identity } from '../auth/identity.js'

/**
 * Whether the credential an identity was proven with still holds, read from the store (the
 * caches were just dropped by the announcement that asks): the person still has tokens (not
 * signed out, not refused by the provider), and the session still exists or the key is still
 * live. An assertion is short-lived by design and is not re-verified: what it spoke for, the
 * person's sign-in, is what must still hold.
 */
export async function identityStillValid (app: FastifyInstance, identity: Identity): Promise<boolean> {
  if (await app.vault.load(identity.personId) === null) return false
  if (identity.via === 'session') return identity.sessionId !== undefined && await app.sessions.touch(identity.sessionId) !== null
  if (identity.via === 'key') return (await app.keys.list(identity.personId)).some((key) => key.id === identity.keyId)
  return true
}
