import { TokenCipher, TokenDecryptError } from '../tokens/crypto.js'

/** How long a started sign-in may take before its login cookie is refused. */
export const LOGIN_TTL_SECONDS = 600
/** Longest return path a sign-in keeps: it travels in the login cookie, which browsers cap near 4 KB. */
export const MAX_RETURN_PATH_LENGTH = 1024
/** Binds a sealed sign-in to its purpose: no other envelope sealed with the same keys opens as one. */
const ASSOCIATED_DATA = 'gemgate:pending-sign-in:v1'

/** What /auth/login hands the browser for the one callback that may finish it. */
export interface PendingSignIn {
  state: string
  nonce: string
  /** The PKCE verifier: a secret, which is why the cookie is encrypted and not only signed. */
  codeVerifier: string
  returnPath: string
  /** Milliseconds since the epoch. */
  startedAt: number
  /** OIDC max_age asked of the provider (a fresh sign-in), checked against the ID token's auth_time. */
  maxAge?: number
}

/**
 * The pending sign-in, sealed (AES-256-GCM under TOKEN_ENCRYPTION_KEYS) into the login cookie
 * instead of stored: an anonymous GET /auth/login costs the server no state at all.
 */
export class PendingSignIns {
  readonly #cipher: TokenCipher

  constructor (encryptionKeys: readonly string[]) {
    this.#cipher = new TokenCipher(encryptionKeys)
  }

  /** The cookie value for a sign-in just started. */
  seal (pending: PendingSignIn): string {
    return this.#cipher.encrypt(JSON.stringify(pending), ASSOCIATED_DATA)
  }

  /** The sign-in a cookie value carries; null when it was tampered with, sealed by no configured key, or is too old. */
  open (sealed: string, now = Date.now()): PendingSignIn | null {
    let pending: PendingSignIn
    try {
      pending = JSON.parse(this.#cipher.decrypt(sealed, ASSOCIATED_DATA).plaintext) as PendingSignIn
    } catch (error) {
      if (error instanceof TokenDecryptError || error instanceof SyntaxError) return null
      throw error
    }
    const age = now - pending.startedAt
    return age >= 0 && age <= LOGIN_TTL_SECONDS * 1000 ? pending : null
  }
}
