import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import { decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT, type JWTPayload } from 'jose'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { SignInAgainError, UnauthenticatedError } from '../errors.js'
import { TokenCipher } from '../tokens/crypto.js'
import type { Identity } from '../auth/identity.js'
import { jwksRoute, SigningKeyRing } from './jwks.js'
import { personIdFor, type Profile } from '../auth/person.js'
import { presentedCredential } from '../auth/presented.js'

/** How long an `X-Gemgate-Assertion` is valid. */
export const ASSERTION_TTL_SECONDS = 300
/** Clock skew forgiven between replicas, and between the gateway and the app. */
export const ASSERTION_CLOCK_TOLERANCE_SECONDS = 30
/** The header that carries the assertion to the fronted app. */
export const ASSERTION_HEADER = 'x-gemgate-assertion'

const JWS_COMPACT = /^[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}$/

/** The claims of an assertion beyond the registered ones. */
interface AssertionClaims extends JWTPayload {
  email?: unknown
  name?: unknown
}

/**
 * Issues and verifies the short-lived ES256 JWTs that tell the fronted app who the person is
 * (iss = aud = PUBLIC_URL, sub, email, name) and that the app's backend can present back as a
 * credential while they are valid. The person id is derived from the issuer and `sub`, as at
 * sign-in, rather than carried in a claim.
 */
export class Assertions {
  constructor (readonly ring: SigningKeyRing, private readonly publicUrl: string) {}

  /** A signed assertion for a person; `issuedAt` (ms) defaults to now. */
  async issue (person: Profile, issuedAt = this.ring.now()): Promise<string> {
    const key = await this.ring.current()
    const iat = Math.floor(issuedAt / 1000)
    return await new SignJWT({ email: person.email, name: person.name })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: key.kid })
      .setIssuer(this.publicUrl)
      .setAudience(this.publicUrl)
      .setSubject(person.sub)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ASSERTION_TTL_SECONDS)
      .setJti(randomUUID())
      .sign(key.privateKey)
  }

  /** The `sub` of a valid assertion of ours; UnauthenticatedError for anything else. */
  async verify (token: string): Promise<string> {
    let kid: unknown
    try {
      const header = decodeProtectedHeader(token)
      if (header.alg !== 'ES256') throw new Error(`alg ${String(header.alg)}`)
      kid = header.kid
    } catch (error) {
      throw new UnauthenticatedError('This assertion is malformed.', { cause: error })
    }
    const key = typeof kid === 'string' ? await this.ring.verificationKey(kid) : null
    if (key === null) throw new UnauthenticatedError('This assertion was not signed by this gateway, or its key has retired.')
    try {
      const { payload } = await jwtVerify<AssertionClaims>(token, key.publicKey, {
        algorithms: ['ES256'],
        issuer: this.publicUrl,
        audience: this.publicUrl,
        typ: 'JWT',
        requiredClaims: ['sub', 'iat', 'exp'],
        clockTolerance: ASSERTION_CLOCK_TOLERANCE_SECONDS,
        maxTokenAge: ASSERTION_TTL_SECONDS + ASSERTION_CLOCK_TOLERANCE_SECONDS,
        currentDate: new Date(this.ring.now()),
      })
      // Only this gateway holds the key, and it never signs a longer-lived one; refuse any that claims otherwise.
      if (payload.exp! - payload.iat! > ASSERTION_TTL_SECONDS) throw new Error('lifetime longer than an assertion\'s')
      return payload.sub!
    } catch (error) {
      throw new UnauthenticatedError('This assertion has expired or is invalid; the app must pass on a fresh X-Gemgate-Assertion.', { cause: error })
    }
  }
}

/** The JWT-shaped value in x-goog-api-key or `Authorization: Bearer`, if any (gateway keys are not). */
export function presentedAssertion (request: FastifyRequest): string | null {
  return presentedCredential(request, isCompactJws, false)
}

const isCompactJws = (value: string): boolean => JWS_COMPACT.test(value)

declare module 'fastify' {
  interface FastifyInstance {
    /** Issues `X-Gemgate-Assertion` for the fronted app and verifies it when presented back. */
    assertions: Assertions
  }
}

function claimsOurIssuer (token: string, publicUrl: string): boolean {
  try {
    return decodeJwt(token).iss === publicUrl
  } catch {
    return false
  }
}

/** A cache miss: the signature and claims, then the profile and tokens in the store. */
async function resolveAssertion (app: FastifyInstance, token: string): Promise<Identity> {
  const ticket = app.identityCache.ticket()
  const sub = await app.assertions.verify(token)
  const personId = personIdFor(app.config.oidc.issuer, sub)
  const [profile, tokens] = await Promise.all([app.profiles.load(personId), app.vault.load(personId)])
  // Signed out (or refused by the provider) since the assertion was issued: it no longer speaks for them.
  if (profile === null || tokens === null) throw new SignInAgainError(app.config.publicUrl)
  const identity: Identity = { ...profile, personId, via: 'assertion' }
  // Verified above, so its exp can be read as is: the cache never outlives the assertion.
  const { exp } = decodeJwt(token)
  app.identityCache.set(`assertion:${token}`, personId, identity, ticket, (exp ?? 0) * 1000)
  return identity
}

/**
 * Delegation for the fronted app: a credential resolver for assertions presented as
 * x-goog-api-key or `Authorization: Bearer`, the shared signing keys, and their JWKS.
 */
export default fp(async function assertionPlugin (app) {
  const ring = new SigningKeyRing(app.store, new TokenCipher(app.config.tokenEncryptionKeys))
  app.decorate('assertions', new Assertions(ring, app.config.publicUrl))
  app.credentialResolvers.push((request) => {
    const token = presentedAssertion(request)
    // Only a JWT that claims this gateway as issuer is an assertion: an app's own bearer JWT
    // beside a session cookie is not a credential of ours, and must not refuse the request.
    if (token === null || !claimsOurIssuer(token, app.config.publicUrl)) return null
    // Expiry is judged by the signing keys' clock, the one verification uses.
    return app.identityCache.get(`assertion:${token}`, app.assertions.ring.now()) ?? resolveAssertion(app, token)
  })
  await app.register(jwksRoute, { ring })
}, { name: 'gemgate-assertion', dependencies: ['gemgate-identity', 'gemgate-sessions', 'gemgate-vault'] })
