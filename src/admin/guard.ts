import type { FastifyInstance, FastifyRequest } from 'fastify'
import createError from '@fastify/error'
import { audit } from '../audit/plugin.js'
import type { Identity } from '../auth/identity.js'
import type { Config } from '../config/schema.js'
import { ForbiddenError, SignInAgainError, UnauthenticatedError } from '../errors.js'

/** An administrator's sign-in is older than ADMIN_REAUTH_SECONDS: sign in again (the message says where). */
export const ReauthRequiredError = createError('GEMGATE_REAUTH_REQUIRED', '%s', 401)

/** What every refusal of /auth/admin says: nothing about why, so nobody learns who administers. */
export const NOT_ADMIN = 'Administration needs a browser session of an administrator, from this gateway\'s own pages.'

/** Whether an identity may administer: a browser session (never a key, assertion or ephemeral token) whose email or groups are listed. */
export function isAdmin (config: Pick<Config, 'adminEmails' | 'adminGroups'>, identity: Identity | null): boolean {
  if (identity?.via !== 'session') return false
  const email = identity.email.toLowerCase()
  if (config.adminEmails.some((admin) => admin.toLowerCase() === email)) return true
  const groups = new Set((identity.groups ?? []).map((group) => group.toLowerCase()))
  return config.adminGroups.some((group) => groups.has(group.toLowerCase()))
}

/**
 * A request from anywhere but the gateway's own pages: an Origin other than PUBLIC_URL's, or a
 * cross-site fetch (Sec-Fetch-Site) that is not a top-level navigation. Refused even for reads:
 * the admin API never answers another origin, CORS listed or not.
 */
function crossOrigin (request: FastifyRequest, ownOrigin: string): boolean {
  const origin = request.headers.origin
  if (typeof origin === 'string' && origin !== ownOrigin) return true
  const site = request.headers['sec-fetch-site']
  return (site === 'cross-site' || site === 'same-site') && request.headers['sec-fetch-mode'] !== 'navigate'
}

/** Who asks, or null when a credential was bad (revoked key, ended sign-in): those are refused like anyone else. */
async function identifyOrNull (app: FastifyInstance, request: FastifyRequest): Promise<Identity | null> {
  try {
    return await app.identify(request)
  } catch (error) {
    if (error instanceof UnauthenticatedError || error instanceof SignInAgainError) return null
    throw error
  }
}

/** The administrator making this request; ForbiddenError (403) for anyone and anything else. */
export async function requireAdmin (app: FastifyInstance, request: FastifyRequest): Promise<Identity> {
  const identity = crossOrigin(request, new URL(app.config.publicUrl).origin) ? null : await identifyOrNull(app, request)
  if (identity !== null && isAdmin(app.config, identity)) return identity
  if (identity !== null) audit(request, { event: 'admin.refused', outcome: 'denied', actor: identity.personId, actorEmail: identity.email, reason: `not-admin:${identity.via}` })
  throw new ForbiddenError(NOT_ADMIN)
}

/** Where an administrator signs in again: OIDC max_age=0 asks the provider for a fresh authentication. */
export function reauthUrl (returnPath: string): string {
  return `/auth/login?max_age=0&rd=${encodeURIComponent(returnPath)}`
}

/** Whether the administrator's sign-in (the provider's auth_time, else the session's start) is at most ADMIN_REAUTH_SECONDS old. */
export async function signedInRecently (app: FastifyInstance, identity: Identity): Promise<boolean> {
  const session = identity.sessionId === undefined ? null : await app.sessions.read(identity.sessionId)
  if (session === null) return false
  return Date.now() - (session.authTime ?? session.createdAt) <= app.config.adminReauthSeconds * 1000
}

/** ReauthRequiredError unless the sign-in is recent: actions that change things need it. */
export async function requireRecentSignIn (app: FastifyInstance, identity: Identity, returnPath = '/auth/admin'): Promise<void> {
  if (await signedInRecently(app, identity)) return
  throw new ReauthRequiredError(`This action needs a sign-in from the last ${app.config.adminReauthSeconds} seconds; sign in again at ${app.config.publicUrl}${reauthUrl(returnPath)}`)
}
