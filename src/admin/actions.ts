import type { FastifyInstance, FastifyRequest } from 'fastify'
import { audit } from '../audit/plugin.js'
import type { Identity } from '../auth/identity.js'
import { signOut } from '../auth/logout.js'
import { NotFoundError } from '../errors.js'

/** What an administrator can do to a person. */
export const PERSON_ACTIONS = ['sign-out', 'suspend', 'unsuspend'] as const
export type PersonAction = typeof PERSON_ACTIONS[number]

/** The reason a suspended person's live connections are given. */
export const ENDED_SUSPENDED = 'suspended by an administrator'

function record (request: FastifyRequest, admin: Identity, action: string, subject: string, detail: Record<string, string> = {}): void {
  audit(request, { event: 'admin.action', outcome: 'success', actor: admin.personId, actorEmail: admin.email, subject, detail: { action, ...detail } })
}

/**
 * Does an action to a person and audits it. Sign-out and suspension end everything the sign-in
 * gave (tokens revoked at the provider, sessions, keys; live streams and WebSockets through the
 * announcement on every replica, and at once on this one).
 */
export async function actOnPerson (app: FastifyInstance, request: FastifyRequest, admin: Identity, personId: string, action: PersonAction): Promise<void> {
  if (await app.people.get(personId) === null) throw new NotFoundError('No person with this id has signed in.')
  if (action === 'unsuspend') {
    await app.people.setSuspended(personId, false)
  } else {
    // Suspended first: a sign-in racing the sign-out is refused.
    if (action === 'suspend') await app.people.setSuspended(personId, true)
    await signOut(app, request, personId, admin.personId)
    app.liveConnections.endPerson(personId, action === 'suspend' ? ENDED_SUSPENDED : 'signed out by an administrator')
  }
  request.log.info({ person: personId, action }, 'administrator action')
  record(request, admin, action, personId)
}

/** Revokes any person's key by id and audits it; the person it belonged to, for the page to return to. */
export async function revokeKey (app: FastifyInstance, request: FastifyRequest, admin: Identity, keyId: string): Promise<string> {
  const key = await app.keys.find(keyId)
  if (key === null || !await app.keys.revoke(key.personId, keyId)) throw new NotFoundError('No live key has this id.')
  request.log.info({ keyId }, 'administrator revoked a key')
  audit(request, { event: 'key.revoked', outcome: 'success', actor: admin.personId, actorEmail: admin.email, subject: keyId })
  record(request, admin, 'revoke-key', key.personId, { keyId })
  return key.personId
}
