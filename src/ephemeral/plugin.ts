import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Identity } from '../auth/identity.js'
import { BadRequestError, NotFoundError, SignInAgainError, UnauthenticatedError } from '../errors.js'
import { liveRpc } from '../proxy/live-target.js'
import { EPHEMERAL_PREFIX, EphemeralRefusal, EphemeralTokens, MAX_EPHEMERAL_USES, type EphemeralToken } from './token-store.js'

export { EphemeralRefusal } from './token-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Gateway ephemeral tokens (`auth_tokens/…`) for browsers' Live sessions. */
    ephemeralTokens: EphemeralTokens
  }
}

/** What `ai.authTokens.create` sends (Google's CreateAuthTokenRequest fields the gateway honours). */
interface MintBody {
  uses?: number
  expireTime?: string
  newSessionExpireTime?: string
  bidiGenerateContentSetup?: Record<string, unknown>
  fieldMask?: string | string[]
}

const mintSchema = {
  body: {
    type: 'object',
    properties: {
      uses: { type: 'integer', minimum: 0, maximum: MAX_EPHEMERAL_USES },
      expireTime: { type: 'string', format: 'date-time' },
      newSessionExpireTime: { type: 'string', format: 'date-time' },
      bidiGenerateContentSetup: { type: 'object' },
    },
  },
}

/** The token a request presents: `?access_token=auth_tokens/…` (the JS SDK) or `Authorization: Token auth_tokens/…`. */
export function presentedEphemeral (request: FastifyRequest): string | null {
  const header = /^Token\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')?.[1]
  const url = request.raw.url ?? ''
  const query = url.includes('?') ? new URLSearchParams(url.slice(url.indexOf('?') + 1)).get('access_token') : null
  return [header, query].find((value) => value?.startsWith(EPHEMERAL_PREFIX) === true) ?? null
}

function iso (epochMs: number): string {
  return new Date(epochMs).toISOString()
}

function timeOf (value: string | undefined): number | undefined {
  return value === undefined ? undefined : Date.parse(value)
}

function answer (token: EphemeralToken, secret: string) {
  return { name: secret, expireTime: iso(token.expiresAt), newSessionExpireTime: iso(token.newSessionExpiresAt), uses: token.uses }
}

async function tokenRoutes (app: FastifyInstance): Promise<void> {
  /** Only a person's own credential mints or revokes: never another ephemeral token. */
  async function minter (request: FastifyRequest): Promise<Identity> {
    const identity = await app.identify(request)
    if (identity === null || identity.via === 'ephemeral') {
      throw new UnauthenticatedError(`Ephemeral tokens are minted with a gateway key or a browser session: sign in at ${app.config.publicUrl}/auth/login.`)
    }
    return identity
  }

  app.post<{ Body: MintBody | undefined }>('/v1alpha/auth_tokens', { schema: mintSchema }, async (request, reply) => {
    const identity = await minter(request)
    const body = request.body ?? {}
    const setup = body.bidiGenerateContentSetup
    const { token, secret } = await app.ephemeralTokens.mint(identity.personId, {
      ...(body.uses === undefined || body.uses === 0 ? {} : { uses: body.uses }),
      ...(timeOf(body.expireTime) === undefined ? {} : { expiresAt: timeOf(body.expireTime) }),
      ...(timeOf(body.newSessionExpireTime) === undefined ? {} : { newSessionExpiresAt: timeOf(body.newSessionExpireTime) }),
      ...(setup === undefined ? {} : { setup }),
    })
    if (token.expiresAt <= Date.now()) throw new BadRequestError('expireTime must be in the future.')
    request.log.info({ ephemeralTokenId: token.id, uses: token.uses, model: token.model }, 'ephemeral token minted')
    reply.header('cache-control', 'no-store')
    return answer(token, secret)
  })

  // Revocation by presenting the token's name, as only its holder knows it.
  app.delete<{ Params: { '*': string } }>('/v1alpha/auth_tokens/*', async (request, reply) => {
    const identity = await minter(request)
    if (!await app.ephemeralTokens.revoke(identity.personId, `${EPHEMERAL_PREFIX}${request.params['*']}`)) {
      throw new NotFoundError('You have no live ephemeral token with this name.')
    }
    await app.personChanges.announce(identity.personId)
    return await reply.code(204).send()
  })
}

/**
 * Ephemeral tokens for browser apps (`ai.authTokens.create`): minted by a person's key or
 * session, short-lived, use-limited, bound to the person and optionally a model and Live setup,
 * stored hashed and revocable. They are credentials on the Live endpoint only, as at Google.
 */
export default fp(async function ephemeralPlugin (app) {
  const tokens = new EphemeralTokens(app.store)
  app.decorate('ephemeralTokens', tokens)

  async function resolve (request: FastifyRequest, secret: string): Promise<Identity> {
    if (liveRpc(request.raw.url ?? '') === null) throw new UnauthenticatedError('Ephemeral tokens open Live API sessions only; use a gateway key here.')
    let token: EphemeralToken
    try {
      token = await tokens.open(secret)
    } catch (error) {
      if (error instanceof EphemeralRefusal) throw new UnauthenticatedError(error.message)
      throw error
    }
    const [profile, stored] = await Promise.all([app.profiles.load(token.personId), app.vault.load(token.personId)])
    if (profile === null || stored === null) throw new SignInAgainError(app.config.publicUrl)
    ephemeralOf.set(request, token)
    return { ...profile, personId: token.personId, via: 'ephemeral', ephemeralTokenId: token.id }
  }

  // First: a token the client presents explicitly wins over an ambient session cookie.
  app.credentialResolvers.unshift((request) => {
    const secret = presentedEphemeral(request)
    return secret === null ? null : resolve(request, secret)
  })
  app.signOutHooks.push(async (personId) => { await tokens.revokeAll(personId) })
  await app.register(tokenRoutes)
}, { name: 'gemgate-ephemeral', dependencies: ['gemgate-identity', 'gemgate-sessions', 'gemgate-logout'] })

const ephemeralOf = new WeakMap<FastifyRequest, EphemeralToken>()

/** The ephemeral token that identified this request, if one did (its model and setup bind the session). */
export function ephemeralTokenOf (request: FastifyRequest): EphemeralToken | undefined {
  return ephemeralOf.get(request)
}
