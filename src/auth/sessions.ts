import { randomBytes } from 'node:crypto'
import fp from 'fastify-plugin'
import fastifyCookie from '@fastify/cookie'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { PersonChanges } from '../store/cache.js'
import type { Store } from '../store/store.js'
import { cookieNames, cookieOptions, type CookieNames } from './cookies.js'
import type { Identity } from './identity.js'
import { ProfileStore } from './person.js'
import { SignInAgainError } from '../errors.js'

/** A browser's sign-in: it points at the person, whose tokens it shares with their other sessions and keys. */
export interface Session {
  personId: string
  createdAt: number
  /** When the person last authenticated at the provider (the ID token's auth_time), ms; absent: createdAt. */
  authTime?: number
  /** The browser that signed in, for the administrator's view (capped). */
  userAgent?: string
  ip?: string
}

/** What a sign-in knows about its session besides the person. */
export type SessionDetails = Pick<Session, 'authTime' | 'userAgent' | 'ip'>

/** Longest user agent a session keeps. */
const MAX_USER_AGENT_LENGTH = 200

const sessionKey = (sessionId: string): string => `session:${sessionId}`
const personSessionsKey = (personId: string): string => `person:${personId}:sessions`

/** How long a session may last: idle (renewed by each use) and in all (from sign-in, never renewed). */
export interface SessionLifetimes {
  idleMs: number
  maxMs: number
}

/** Sessions by random id, with an idle expiry that each use renews, within an absolute lifetime. */
export class SessionStore {
  constructor (private readonly store: Store, private readonly lifetimes: SessionLifetimes, private readonly changes?: PersonChanges) {}

  /** A new session with a fresh 256-bit id (never reusing one the browser sent: no fixation). */
  async create (personId: string, details: SessionDetails = {}): Promise<string> {
    const sessionId = randomBytes(32).toString('base64url')
    const { userAgent, ...rest } = details
    const session: Session = { personId, createdAt: Date.now(), ...rest, ...(userAgent === undefined ? {} : { userAgent: userAgent.slice(0, MAX_USER_AGENT_LENGTH) }) }
    await this.store.set(sessionKey(sessionId), JSON.stringify(session), Math.min(this.lifetimes.idleMs, this.lifetimes.maxMs))
    await this.store.addToSet(personSessionsKey(personId), sessionId)
    return sessionId
  }

  /** The session, renewed for another idle period (never past its absolute end); null when unknown or over. */
  async touch (sessionId: string): Promise<Session | null> {
    const text = await this.store.get(sessionKey(sessionId))
    if (text === null) return null
    const session = JSON.parse(text) as Session
    const remainingMs = this.endsAt(session) - Date.now()
    if (remainingMs <= 0) {
      await this.delete(sessionId, session.personId)
      return null
    }
    await this.store.expire(sessionKey(sessionId), Math.min(this.lifetimes.idleMs, remainingMs))
    return session
  }

  /** The session as stored, without renewing it; null when unknown. */
  async read (sessionId: string): Promise<Session | null> {
    const text = await this.store.get(sessionKey(sessionId))
    return text === null ? null : JSON.parse(text) as Session
  }

  /** A person's live sessions (the administrator's view), by id. */
  async listFor (personId: string): Promise<Array<Session & { id: string }>> {
    const sessionIds = await this.store.setMembers(personSessionsKey(personId))
    const sessions = await Promise.all(sessionIds.map(async (id) => ({ id, session: await this.read(id) })))
    return sessions.flatMap(({ id, session }) => session === null ? [] : [{ ...session, id }])
  }

  /** When a session ends however much it is used: SESSION_MAX_SECONDS after sign-in. */
  endsAt (session: Pick<Session, 'createdAt'>): number {
    return session.createdAt + this.lifetimes.maxMs
  }

  /** Milliseconds since the epoch when a session left unused from now ends (at most its absolute end). */
  expiresAt (endsAt = Infinity): number {
    return Math.min(Date.now() + this.lifetimes.idleMs, endsAt)
  }

  async delete (sessionId: string, personId: string): Promise<void> {
    await this.store.delete(sessionKey(sessionId))
    await this.store.removeFromSet(personSessionsKey(personId), sessionId)
    await this.changes?.announce(personId)
  }

  /**
   * Ends every session of a person (sign-out, lost refresh token); with `startedBefore`, only
   * those started before it: a sign-in after a lost refresh token keeps its new session.
   */
  async deleteAllFor (personId: string, startedBefore?: number): Promise<void> {
    const sessionIds = await this.store.setMembers(personSessionsKey(personId))
    const ending = startedBefore === undefined ? sessionIds : await this.#startedBefore(sessionIds, startedBefore)
    await this.store.delete(...ending.map(sessionKey), ...(ending.length === sessionIds.length ? [personSessionsKey(personId)] : []))
    await Promise.all(ending.map(async (sessionId) => { await this.store.removeFromSet(personSessionsKey(personId), sessionId) }))
    await this.changes?.announce(personId)
  }

  async #startedBefore (sessionIds: string[], time: number): Promise<string[]> {
    const sessions = await Promise.all(sessionIds.map(async (sessionId) => await this.store.get(sessionKey(sessionId))))
    return sessionIds.filter((_sessionId, index) => {
      const text = sessions[index]
      return text === null || text === undefined || (JSON.parse(text) as Session).createdAt < time
    })
  }

  /** Whether the person has a session that has not expired (their tokens are still of use). */
  async hasLive (personId: string): Promise<boolean> {
    const sessionIds = await this.store.setMembers(personSessionsKey(personId))
    const sessions = await Promise.all(sessionIds.map(async (sessionId) => await this.store.get(sessionKey(sessionId))))
    return sessions.some((session) => session !== null)
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    sessions: SessionStore
    profiles: ProfileStore
    cookieNames: CookieNames
    /** Starts a session for a person: a new id, the old cookie replaced. */
    startSession: (reply: FastifyReply, personId: string, details?: SessionDetails) => Promise<void>
  }
  interface FastifyRequest {
    /** A session cookie was sent but is bad or stale: clear it in the response. */
    staleSessionCookie: boolean
  }
}

/** Session cookies: signing (first secret signs, all verify), lookup as a credential, clearing stale ones. */
export default fp(async function sessionsPlugin (app) {
  const names = cookieNames(app.config)
  const sessions = new SessionStore(app.store, { idleMs: app.config.sessionTtlSeconds * 1000, maxMs: app.config.sessionMaxSeconds * 1000 }, app.personChanges)
  // The cookie never outlives the session: neither its idle nor its absolute lifetime.
  const cookieMaxAge = Math.min(app.config.sessionTtlSeconds, app.config.sessionMaxSeconds)
  const profiles = new ProfileStore(app.store)
  await app.register(fastifyCookie, { secret: [...app.config.cookieSecrets], algorithm: 'sha256' })
  app.decorate('sessions', sessions)
  app.decorate('profiles', profiles)
  app.decorate('cookieNames', names)
  app.decorateRequest('staleSessionCookie', false)

  app.vault.addAccessCheck(async (personId) => await sessions.hasLive(personId))

  app.decorate('startSession', async (reply: FastifyReply, personId: string, details?: SessionDetails) => {
    const sessionId = await sessions.create(personId, details)
    reply.setCookie(names.session, sessionId, cookieOptions(names, cookieMaxAge))
  })

  /** A cache miss: the cookie's signature, then the session, profile and tokens in the store. */
  async function resolveSession (request: FastifyRequest, cookie: string): Promise<Identity | null> {
    const unsigned = request.unsignCookie(cookie)
    if (!unsigned.valid || unsigned.value === null) return null
    const sessionId = unsigned.value
    // A miss touches the session: its idle expiry is renewed at most once per cache lifetime, not per request.
    const ticket = app.identityCache.ticket()
    const session = await sessions.touch(sessionId)
    if (session === null) return null
    const [profile, tokens] = await Promise.all([profiles.load(session.personId), app.vault.load(session.personId)])
    if (profile === null || tokens === null) throw new SignInAgainError(app.config.publicUrl)
    const sessionEndsAt = sessions.endsAt(session)
    const identity: Identity = { ...profile, personId: session.personId, via: 'session', sessionId, sessionEndsAt }
    // Kept under the signed cookie itself: a hit skips the signature check too, and only a cookie that passed it gets in.
    // Never past the session's absolute end.
    app.identityCache.set(`cookie:${cookie}`, session.personId, identity, ticket, sessionEndsAt)
    return identity
  }

  async function resolveStale (request: FastifyRequest, cookie: string): Promise<Identity | null> {
    try {
      const identity = await resolveSession(request, cookie)
      // A tampered, unknown or expired cookie means signed out, not an error.
      if (identity === null) request.staleSessionCookie = true
      return identity
    } catch (error) {
      if (error instanceof SignInAgainError) request.staleSessionCookie = true
      throw error
    }
  }

  app.credentialResolvers.push((request: FastifyRequest) => {
    const cookie = request.cookies[names.session]
    if (cookie === undefined) return null
    return app.identityCache.get(`cookie:${cookie}`) ?? resolveStale(request, cookie)
  })

  // A late header, not reply.clearCookie: it must reach replies a route writes itself (the API proxy) too.
  const cleared = app.serializeCookie(names.session, '', { path: '/', httpOnly: true, secure: names.secure, sameSite: 'lax', expires: new Date(0) })
  app.lateHeaders.push((request, reply) => {
    if (request.staleSessionCookie) reply.header('set-cookie', cleared)
  })
}, { name: 'gemgate-sessions', dependencies: ['gemgate-identity'] })
