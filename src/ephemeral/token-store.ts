import { createHash, randomBytes } from 'node:crypto'
import type { Store } from '../store/store.js'

/** Every gateway ephemeral token is a name in Google's form, so the SDKs treat it as one (`auth_tokens/…`). */
export const EPHEMERAL_PREFIX = 'auth_tokens/'
/** `auth_tokens/gt_` and 32 random bytes in base64url: told apart from Google's own tokens. */
export const EPHEMERAL_PATTERN = /^auth_tokens\/gt_[A-Za-z0-9_-]{43}$/
/** How long a token may be used when the request does not say (Google's default too). */
export const DEFAULT_EPHEMERAL_TTL_MS = 30 * 60 * 1000
/** Longest lifetime a token may be given (Google allows up to 20 hours; a browser needs far less). */
export const MAX_EPHEMERAL_TTL_MS = 60 * 60 * 1000
/** How long a token may start new sessions when the request does not say (Google's default). */
export const DEFAULT_NEW_SESSION_MS = 60 * 1000
/** Sessions one token opens when the request does not say (Google's default). */
export const DEFAULT_EPHEMERAL_USES = 1
/** Most sessions one token may open. */
export const MAX_EPHEMERAL_USES = 100

/** A token as stored: never the secret. */
export interface EphemeralToken {
  id: string
  personId: string
  createdAt: number
  /** After this, no message may be sent: open sessions end. */
  expiresAt: number
  /** After this, no new session may start. */
  newSessionExpiresAt: number
  uses: number
  /** The model sessions must use, when bound to one. */
  model?: string
  /** Setup fields that override what the client sends (Google's constrained setup). */
  setup?: Record<string, unknown>
}

/** What a mint request may ask for; everything is capped. */
export interface EphemeralRequest {
  expiresAt?: number
  newSessionExpiresAt?: number
  uses?: number
  setup?: Record<string, unknown>
}

/** Why a token does not open a session; the message is the close reason. */
export class EphemeralRefusal extends Error {}

const byHashKey = (hash: string): string => `ephemeral:hash:${hash}`
const idKey = (id: string): string => `ephemeral:id:${id}`
const useKey = (hash: string, use: number): string => `ephemeral:use:${hash}:${use}`
const personKey = (personId: string): string => `person:${personId}:ephemeral`

function hashOf (secret: string): string {
  // 256 random bits: a fast hash is as good as a slow one.
  return createHash('sha256').update(secret).digest('base64url')
}

function modelOf (setup: Record<string, unknown> | undefined): string | undefined {
  const model = setup?.model
  return typeof model === 'string' ? model.replace(/^models\//, '') : undefined
}

/**
 * Gateway ephemeral tokens: minted for a signed-in person, stored only as SHA-256 hashes with
 * the store's TTL at their expiry, counted per use with one-time markers (a use is claimed
 * atomically, so two sessions cannot share the last one), revoked one by one or all at sign-out.
 */
export class EphemeralTokens {
  constructor (private readonly store: Store) {}

  /** Mints a token; the returned secret is the only copy. */
  async mint (personId: string, request: EphemeralRequest, now = Date.now()): Promise<{ token: EphemeralToken, secret: string }> {
    const secret = `${EPHEMERAL_PREFIX}gt_${randomBytes(32).toString('base64url')}`
    const expiresAt = Math.min(request.expiresAt ?? now + DEFAULT_EPHEMERAL_TTL_MS, now + MAX_EPHEMERAL_TTL_MS)
    const token: EphemeralToken = {
      id: randomBytes(12).toString('base64url'),
      personId,
      createdAt: now,
      expiresAt,
      newSessionExpiresAt: Math.min(request.newSessionExpiresAt ?? now + DEFAULT_NEW_SESSION_MS, expiresAt),
      uses: Math.min(Math.max(request.uses ?? DEFAULT_EPHEMERAL_USES, 1), MAX_EPHEMERAL_USES),
      ...(modelOf(request.setup) === undefined ? {} : { model: modelOf(request.setup) }),
      ...(request.setup === undefined ? {} : { setup: request.setup }),
    }
    const ttl = Math.max(1, expiresAt - now)
    const hash = hashOf(secret)
    await this.store.set(byHashKey(hash), JSON.stringify(token), ttl)
    await this.store.set(idKey(token.id), hash, ttl)
    await this.store.addToSet(personKey(personId), token.id)
    return { token, secret }
  }

  /** Takes one use of a token for a new session; throws EphemeralRefusal saying why it cannot. */
  async open (secret: string, now = Date.now()): Promise<EphemeralToken> {
    if (!EPHEMERAL_PATTERN.test(secret)) throw new EphemeralRefusal('This ephemeral token is not one this gateway issued.')
    const hash = hashOf(secret)
    const token = await this.#load(hash)
    if (token === null || token.expiresAt <= now) throw new EphemeralRefusal('This ephemeral token is expired or revoked.')
    if (token.newSessionExpiresAt <= now) throw new EphemeralRefusal('This ephemeral token may no longer start new sessions.')
    for (let use = 1; use <= token.uses; use++) {
      if (await this.store.setIfAbsent(useKey(hash, use), '1', Math.max(1, token.expiresAt - now))) return token
    }
    throw new EphemeralRefusal('This ephemeral token has been used up.')
  }

  /** True while the token is neither expired nor revoked (sessions it opened may go on). */
  async isLive (id: string, now = Date.now()): Promise<boolean> {
    const hash = await this.store.get(idKey(id))
    const token = hash === null ? null : await this.#load(hash)
    return token !== null && token.expiresAt > now
  }

  /** Revokes one token of this person; false when they have no such live token. */
  async revoke (personId: string, secret: string): Promise<boolean> {
    const token = EPHEMERAL_PATTERN.test(secret) ? await this.#load(hashOf(secret)) : null
    if (token === null || token.personId !== personId) return false
    await this.#remove(personId, token.id)
    return true
  }

  /** Revokes every token of a person (sign-out). */
  async revokeAll (personId: string): Promise<void> {
    const ids = await this.store.setMembers(personKey(personId))
    await Promise.all(ids.map(async (id) => { await this.#remove(personId, id) }))
    await this.store.delete(personKey(personId))
  }

  async #remove (personId: string, id: string): Promise<void> {
    const hash = await this.store.get(idKey(id))
    await this.store.delete(...(hash === null ? [] : [byHashKey(hash)]), idKey(id))
    await this.store.removeFromSet(personKey(personId), id)
  }

  async #load (hash: string): Promise<EphemeralToken | null> {
    const text = await this.store.get(byHashKey(hash))
    return text === null ? null : JSON.parse(text) as EphemeralToken
  }
}
