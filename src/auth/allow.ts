import type { Config } from '../config/schema.js'

/** The claims the allow-list looks at, as the ID token (or userinfo) gave them. */
export interface EmailClaims {
  email?: unknown
  email_verified?: unknown
}

/** Why a person may not sign in, or null when they may. */
export type Refusal = 'no-email' | 'unverified' | 'malformed' | 'not-allowed'

// One "@", a non-empty local part, a dotted domain, nothing that could confuse a comparison.
const EMAIL = /^[^\s@"<>()[\]\\,;:]+@([a-z0-9-]+(\.[a-z0-9-]+)+)$/i

/** Checks a verified email against ALLOWED_EMAILS / ALLOWED_EMAIL_DOMAINS (exact matches only). */
export function checkEmail (claims: EmailClaims, config: Pick<Config, 'allowedEmails' | 'allowedEmailDomains'>): Refusal | null {
  if (typeof claims.email !== 'string' || claims.email === '') return 'no-email'
  // Google sends a boolean; some providers send the string "true".
  if (claims.email_verified !== true && claims.email_verified !== 'true') return 'unverified'
  const match = EMAIL.exec(claims.email)
  if (match === null) return 'malformed'
  const email = claims.email.toLowerCase()
  const domain = match[1]!.toLowerCase()
  if (config.allowedEmails.some((allowed) => allowed.toLowerCase() === email)) return null
  if (config.allowedEmailDomains.some((allowed) => allowed === '*' || allowed.toLowerCase() === domain)) return null
  return 'not-allowed'
}
