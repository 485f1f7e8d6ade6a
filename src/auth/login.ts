import { createHash } from 'node:crypto'
import fp from 'fastify-plugin'
import * as oidc from 'openid-client'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { audit } from '../audit/plugin.js'
import { checkEmail, type EmailClaims, type Refusal } from './allow.js'
import { clearCookie, cookieOptions } from './cookies.js'
import { errorPage, html, layout, sendPage, type Html } from './pages.js'
import { personIdFor, type Profile } from './person.js'
import { LOGIN_TTL_SECONDS, MAX_RETURN_PATH_LENGTH, PendingSignIns, type PendingSignIn } from './pending-sign-in.js'
import { publicHostRedirect } from './public-host.js'
import { DEFAULT_RETURN_PATH, safeReturnPath } from './redirect.js'

/** Marks a state whose code was exchanged, until the login cookie that carried it has expired anyway. */
const usedStateKey = (state: string): string => `login:used:${createHash('sha256').update(state).digest('base64url')}`

const REFUSALS: Record<Refusal, string> = {
  'no-email': 'The provider did not share an email address for this account.',
  unverified: 'This account\'s email address is not verified.',
  malformed: 'This account\'s email address is not one Gemgate accepts.',
  'not-allowed': 'This account is not allowed to use this gateway.',
}

/**
 * What the sign-in page says for each error code a provider may send back (RFC 6749 4.1.2.1,
 * OIDC Core 3.1.2.6). The provider's own `error_description` is never shown: anyone can put
 * text in a callback URL and send it to a victim, and the page is the gateway's.
 */
const PROVIDER_ERRORS: Record<string, string> = {
  access_denied: 'You cancelled the sign-in, or the sign-in provider did not allow it.',
  login_required: 'The sign-in provider needs you to sign in again.',
  interaction_required: 'The sign-in provider needs you to confirm something before you can continue.',
  consent_required: 'The sign-in provider needs your consent before you can continue.',
  account_selection_required: 'The sign-in provider needs you to choose an account.',
  temporarily_unavailable: 'The sign-in provider is busy right now. Please try again in a moment.',
  server_error: 'The sign-in provider ran into an error. Please try again in a moment.',
}
const UNKNOWN_PROVIDER_ERROR = 'The sign-in provider did not complete the sign-in.'

function signedInAlreadyPage (): Html {
  return layout('Signed in', html`<section class="card"><h1>You are already signed in</h1>
<p>This sign-in link was used before (a reload or the back button); your session is fine.</p>
<p class="row"><a class="button" href="/">Continue</a><a class="button secondary" href="/auth/status">Your gateway status</a></p></section>`)
}

/** Longest OIDC max_age /auth/login passes on (a day): a fresh sign-in is asked for in seconds, not weeks. */
export const MAX_SIGN_IN_AGE_SECONDS = 86_400

/** Clock difference tolerated between the provider's auth_time and this replica. */
const AUTH_TIME_SKEW_SECONDS = 30

/** Why a sign-in is refused by a check another room registered (a suspension): a page title and text, and the audit reason. */
export interface SignInRefusal {
  title: string
  message: string
  reason: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Checks run before a sign-in makes a session: the first refusal ends it on its page. */
    signInChecks: Array<(personId: string) => Promise<SignInRefusal | null>>
    /** Run after a sign-in made its session (the administrator's people index). */
    signedInHooks: Array<(personId: string, profile: Profile) => Promise<void>>
  }
}

/** `?max_age=` of /auth/login: a whole number of seconds up to {@link MAX_SIGN_IN_AGE_SECONDS}, else none. */
function requestedMaxAge (value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,6}$/.test(value)) return undefined
  const seconds = Number(value)
  return seconds <= MAX_SIGN_IN_AGE_SECONDS ? seconds : undefined
}

/** A sign-in that cannot finish: ends on the error page with this status, and no session. */
class SignInFailure extends Error {
  constructor (readonly status: number, readonly title: string, message: string, options?: ErrorOptions) {
    super(message, options)
  }
}

function authorizeParameters (app: FastifyInstance, transaction: PendingSignIn, codeChallenge: string): Record<string, string> {
  return {
    ...Object.fromEntries(new URLSearchParams(app.config.oidc.authParams)),
    redirect_uri: `${app.config.publicUrl}/auth/callback`,
    scope: app.config.oidc.scopes,
    response_type: 'code',
    state: transaction.state,
    nonce: transaction.nonce,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    ...(transaction.maxAge === undefined ? {} : { max_age: String(transaction.maxAge) }),
  }
}

function returnPath (rd: string | undefined, publicUrl: string): string {
  const path = safeReturnPath(rd, publicUrl)
  // Normalising can lengthen a path (percent-encoding): the cap applies to what the cookie would carry.
  return path.length > MAX_RETURN_PATH_LENGTH ? DEFAULT_RETURN_PATH : path
}

async function startLogin (app: FastifyInstance, pendingSignIns: PendingSignIns, request: FastifyRequest<{ Querystring: { rd?: string, max_age?: string } }>, reply: FastifyReply): Promise<FastifyReply> {
  const configuration = await app.provider.configuration()
  const maxAge = requestedMaxAge(request.query.max_age)
  const transaction: PendingSignIn = {
    ...(maxAge === undefined ? {} : { maxAge }),
    state: oidc.randomState(),
    nonce: oidc.randomNonce(),
    codeVerifier: oidc.randomPKCECodeVerifier(),
    returnPath: returnPath(request.query.rd, app.config.publicUrl),
    startedAt: Date.now(),
  }
  const codeChallenge = await oidc.calculatePKCECodeChallenge(transaction.codeVerifier)
  const url = oidc.buildAuthorizationUrl(configuration, authorizeParameters(app, transaction, codeChallenge))
  reply.setCookie(app.cookieNames.login, pendingSignIns.seal(transaction), cookieOptions(app.cookieNames, LOGIN_TTL_SECONDS))
  return reply.header('cache-control', 'no-store').redirect(url.href, 302)
}

function takeTransaction (app: FastifyInstance, pendingSignIns: PendingSignIns, request: FastifyRequest): PendingSignIn {
  const raw = request.cookies[app.cookieNames.login]
  const unsigned = raw === undefined ? null : request.unsignCookie(raw)
  const pending = unsigned?.valid === true && unsigned.value !== null ? pendingSignIns.open(unsigned.value) : null
  if (pending === null) {
    throw new SignInFailure(400, 'Sign-in could not be finished', 'This sign-in was not started in this browser, or it took too long. ' +
      `If you opened the gateway at another address than ${app.config.publicUrl} (127.0.0.1 instead of localhost, say), open ${app.config.publicUrl} instead. Please start again.`)
  }
  return pending
}

/**
 * One-time use without per-login storage: a state is marked used only after its code was
 * exchanged, so only a successful sign-in writes here, and a replayed callback (with a copy of
 * the login cookie) finds the mark.
 */
async function markUsed (app: FastifyInstance, transaction: PendingSignIn): Promise<void> {
  const remainingMs = transaction.startedAt + LOGIN_TTL_SECONDS * 1000 - Date.now()
  if (!await app.store.setIfAbsent(usedStateKey(transaction.state), '1', Math.max(1, remainingMs))) {
    throw new SignInFailure(400, 'Sign-in could not be finished', 'This sign-in has already been used or has expired. Please start again.')
  }
}

function callbackUrl (app: FastifyInstance, request: FastifyRequest): URL {
  // Built from PUBLIC_URL, never from Host or X-Forwarded-*: it must match what the provider saw.
  const url = new URL(`${app.config.publicUrl}/auth/callback`)
  url.search = new URL(request.url, 'http://localhost').search
  return url
}

async function exchangeCode (app: FastifyInstance, request: FastifyRequest, transaction: PendingSignIn) {
  const configuration = await app.provider.configuration()
  try {
    return await oidc.authorizationCodeGrant(configuration, callbackUrl(app, request), {
      pkceCodeVerifier: transaction.codeVerifier,
      expectedState: transaction.state,
      expectedNonce: transaction.nonce,
      idTokenExpected: true,
    })
  } catch (error) {
    request.log.info({ reason: (error as Error).message, code: (error as { code?: string }).code }, 'sign-in callback refused')
    throw new SignInFailure(400, 'Sign-in could not be finished', 'The sign-in response could not be verified. Please start again.', { cause: error })
  }
}

type Tokens = Awaited<ReturnType<typeof exchangeCode>>
type Claims = EmailClaims & { sub: string, name?: unknown, hd?: unknown } & Record<string, unknown>

async function identityClaims (app: FastifyInstance, tokens: Tokens): Promise<Claims> {
  const claims = tokens.claims()!
  const groupsClaim = app.config.oidc.groupsClaim
  if (claims.email !== undefined && (groupsClaim === undefined || claims[groupsClaim] !== undefined)) return claims as Claims
  // Some providers keep email out of the ID token; their userinfo endpoint has it.
  const userinfo = await oidc.fetchUserInfo(await app.provider.configuration(), tokens.access_token, claims.sub)
  return { ...claims, ...userinfo, sub: claims.sub } as Claims
}

/** The groups and hosted domain policy rules match on: the groups claim as a list (or one name), and `hd`. */
function policyClaims (app: FastifyInstance, claims: Claims): { groups?: string[], hostedDomain?: string } {
  const name = app.config.oidc.groupsClaim
  const raw = name === undefined ? undefined : claims[name]
  const groups = (Array.isArray(raw) ? raw : typeof raw === 'string' ? [raw] : []).filter((group): group is string => typeof group === 'string')
  return { ...(name === undefined ? {} : { groups }), ...(typeof claims.hd === 'string' ? { hostedDomain: claims.hd } : {}) }
}

async function finishLogin (app: FastifyInstance, pendingSignIns: PendingSignIns, request: FastifyRequest<{ Querystring: Record<string, string | undefined> }>, reply: FastifyReply): Promise<FastifyReply> {
  const transaction = takeTransaction(app, pendingSignIns, request)
  if (request.query.error !== undefined) {
    const error = request.query.error
    request.log.info({ providerError: error.slice(0, 64) }, 'sign-in provider answered with an error')
    throw new SignInFailure(403, 'Sign-in was not completed', Object.hasOwn(PROVIDER_ERRORS, error) ? PROVIDER_ERRORS[error]! : UNKNOWN_PROVIDER_ERROR)
  }
  const tokens = await exchangeCode(app, request, transaction)
  await markUsed(app, transaction)
  const claims = await identityClaims(app, tokens)
  refuseStaleAuthentication(transaction, claims)
  const refusal = checkEmail(claims, app.config)
  if (refusal !== null) {
    request.log.info({ refusal }, 'sign-in refused by the allow-list')
    audit(request, { event: 'sign-in.refused', outcome: 'denied', actorEmail: String(claims.email ?? ''), reason: `allow-list:${refusal}` })
    const who = typeof claims.email === 'string' ? ` (signed in at the provider as ${claims.email})` : ''
    throw new SignInFailure(403, 'Access denied', `${REFUSALS[refusal]}${who} If you have another account, sign in again with it.`)
  }
  const personId = personIdFor(app.config.oidc.issuer, claims.sub)
  await refuseByChecks(app, request, personId, String(claims.email))
  const profile: Profile = { sub: claims.sub, email: String(claims.email), name: typeof claims.name === 'string' ? claims.name : String(claims.email), ...policyClaims(app, claims) }
  await app.profiles.save(personId, profile)
  await app.vault.save(personId, claims.sub, {
    accessToken: tokens.access_token,
    ...(tokens.refresh_token === undefined ? {} : { refreshToken: tokens.refresh_token }),
    expiresAt: Date.now() + (tokens.expiresIn() ?? 3600) * 1000,
    ...(tokens.scope === undefined ? {} : { scope: tokens.scope }),
  })
  const userAgent = request.headers['user-agent']
  await app.startSession(reply, personId, {
    ...(typeof claims.auth_time === 'number' ? { authTime: claims.auth_time * 1000 } : {}),
    ...(userAgent === undefined ? {} : { userAgent }),
    ip: request.ip,
  })
  for (const hook of app.signedInHooks) await hook(personId, profile)
  request.log.info({ person: personId }, 'signed in')
  audit(request, { event: 'sign-in', outcome: 'success', actor: personId, actorEmail: String(claims.email) })
  return reply.header('cache-control', 'no-store').redirect(transaction.returnPath, 302)
}

/**
 * A sign-in that asked for max_age: the ID token's auth_time must be that recent. Checked here
 * rather than by openid-client, which would refuse an ID token without auth_time: some
 * providers leave it out, and then the new session's start is the sign-in's time.
 */
function refuseStaleAuthentication (transaction: PendingSignIn, claims: Claims): void {
  if (transaction.maxAge === undefined || typeof claims.auth_time !== 'number') return
  if (Date.now() / 1000 - claims.auth_time <= transaction.maxAge + AUTH_TIME_SKEW_SECONDS) return
  throw new SignInFailure(400, 'Sign-in could not be finished', 'The sign-in provider did not ask you to sign in again. Please start again.')
}

async function refuseByChecks (app: FastifyInstance, request: FastifyRequest, personId: string, email: string): Promise<void> {
  for (const check of app.signInChecks) {
    const refusal = await check(personId)
    if (refusal === null) continue
    request.log.info({ person: personId, reason: refusal.reason }, 'sign-in refused')
    audit(request, { event: 'sign-in.refused', outcome: 'denied', actor: personId, actorEmail: email, reason: refusal.reason })
    throw new SignInFailure(403, refusal.title, refusal.message)
  }
}

/** GET /auth/login and GET /auth/callback: the authorization-code flow with PKCE, state and nonce. */
export default fp(async function loginPlugin (app) {
  const pendingSignIns = new PendingSignIns(app.config.tokenEncryptionKeys)
  app.decorate('signInChecks', [])
  app.decorate('signedInHooks', [])
  app.get<{ Querystring: { rd?: string, max_age?: string } }>('/auth/login', async (request, reply) => {
    const elsewhere = publicHostRedirect(request, app.config.publicUrl)
    if (elsewhere !== undefined) return reply.header('cache-control', 'no-store').redirect(elsewhere, 302)
    return await startLogin(app, pendingSignIns, request, reply)
  })

  app.get<{ Querystring: Record<string, string | undefined> }>('/auth/callback', async (request, reply) => {
    clearCookie(reply, app.cookieNames, app.cookieNames.login)
    // The callback URL carries the code and state: never leak it to the next page's origin.
    reply.header('referrer-policy', 'no-referrer')
    try {
      return await finishLogin(app, pendingSignIns, request, reply)
    } catch (error) {
      if (!(error instanceof SignInFailure)) throw error
      // The allow-list refusal was recorded with its reason where it was decided.
      if (error.status !== 403 || request.query.error !== undefined) audit(request, { event: 'sign-in.refused', outcome: 'failure', reason: request.query.error === undefined ? 'callback-invalid' : 'provider-error' })
      // A replayed or stale callback in a browser that is signed in: still refused, but their session is fine.
      const signedIn = await app.identify(request).then((identity) => identity?.via === 'session', () => false)
      if (signedIn && error.status === 400) return sendPage(reply, error.status, signedInAlreadyPage())
      return sendPage(reply, error.status, errorPage(error.title, error.message))
    }
  })
}, { name: 'gemgate-login', dependencies: ['gemgate-sessions'] })
