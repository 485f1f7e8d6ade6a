import { createHmac, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { ForbiddenError } from '../errors.js'
import type { Identity } from './identity.js'

/** The form field (and only place) the key form token travels in. */
export const FORM_TOKEN_FIELD = 'formToken'
const PURPOSE = 'gemgate:key-form:v1:'

/**
 * Keeps the fronted app's scripts (which share the gateway's origin, so the cookie and every
 * same-origin check) from minting gateway keys. A key is created only by a real form submission
 * of the status page: a top-level navigation (Fetch Metadata, which scripts cannot forge) that
 * carries a token bound to the session. The token is written only into status pages delivered
 * as top-level documents, which the app cannot read: not by fetch (no token then), not in a frame
 * (frame-ancestors 'none'), not in a popup (Cross-Origin-Opener-Policy: noopener-allow-popups).
 */
export class KeyGuard {
  constructor (private readonly secrets: readonly string[]) {}

  /** The token for the status page's key form; null when this request must not receive one. */
  tokenFor (request: FastifyRequest, identity: Identity): string | null {
    if (identity.sessionId === undefined || !isTopLevelDocument(request)) return null
    return this.#token(this.secrets[0]!, identity.sessionId)
  }

  /** ForbiddenError unless a key may be created by this request (see the class). */
  checkCreate (request: FastifyRequest, identity: Identity, token: unknown): void {
    // A client without Fetch Metadata is no modern browser, so no app's script: the CSRF origin
    // check is its guard. (Browsers without Fetch Metadata are not covered: see docs/security.md.)
    if (!hasFetchMetadata(request)) return
    if (request.headers['sec-fetch-site'] !== 'same-origin' || !isTopLevelDocument(request)) {
      throw new ForbiddenError('Gateway keys are created from the form on the status page, not by scripts: open /auth/status.')
    }
    if (!this.#valid(token, identity.sessionId)) {
      throw new ForbiddenError('This key form has expired or did not come from the status page: reload /auth/status and try again.')
    }
  }

  #token (secret: string, sessionId: string): string {
    return createHmac('sha256', secret).update(PURPOSE + sessionId).digest('base64url')
  }

  #valid (token: unknown, sessionId: string | undefined): boolean {
    if (typeof token !== 'string' || sessionId === undefined) return false
    const given = Buffer.from(token)
    // Every cookie secret verifies, so rotating COOKIE_SECRETS does not break open pages.
    return this.secrets.some((secret) => {
      const expected = Buffer.from(this.#token(secret, sessionId))
      return expected.length === given.length && timingSafeEqual(expected, given)
    })
  }
}

/** Only browsers send Sec-Fetch-Site (Node's fetch sends Sec-Fetch-Mode too, always `cors`), and scripts cannot set it. */
function hasFetchMetadata (request: FastifyRequest): boolean {
  return request.headers['sec-fetch-site'] !== undefined
}

/** A browser's top-level navigation, or a client that is no browser with Fetch Metadata. */
function isTopLevelDocument (request: FastifyRequest): boolean {
  return !hasFetchMetadata(request) || (request.headers['sec-fetch-dest'] === 'document' && request.headers['sec-fetch-mode'] === 'navigate')
}
