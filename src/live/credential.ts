import type { FastifyInstance } from 'fastify'
import type { Identity } from '../auth/identity.js'

/**
 * Whether the credential that opened a live session still holds: the person still has tokens
 * (not signed out), and the session, key or ephemeral token is still there (not revoked).
 * Asked only when a change about the person is announced, never per frame.
 */
export async function credentialStillValid (app: FastifyInstance, identity: Identity): Promise<boolean> {
  if (await app.vault.load(identity.personId) === null) return false
  switch (identity.via) {
    case 'session':
      return identity.sessionId !== undefined && await app.sessions.touch(identity.sessionId) !== null
    case 'key':
      return (await app.keys.list(identity.personId)).some((key) => key.id === identity.keyId)
    case 'ephemeral':
      return identity.ephemeralTokenId !== undefined && await app.ephemeralTokens.isLive(identity.ephemeralTokenId)
    case 'assertion':
      return true
  }
}
