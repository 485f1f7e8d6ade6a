/** Who a request acts for, once a session cookie, gateway key or assertion proved it. */
export interface Identity {
  /** A hash of issuer + sub: the key of everything stored for this person. */
  personId: string
  sub: string
  email: string
  name: string
  via: 'session' | 'key' | 'assertion'
  sessionId?: string
  keyId?: string
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the authentication hooks; null while nobody is identified. */
    identity: Identity | null
  }
}
