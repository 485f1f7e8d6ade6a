import { randomBytes } from 'node:crypto'
import fp from 'fastify-plugin'
import * as oidc from 'openid-client'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { checkEmail, type EmailClaims, type Refusal } from './allow.js'
import { clearCookie, cookieOptions } from './cookies.js'
import { errorPage, html, layout, sendPage, type Html } from './pages.js'
import { personIdFor } from './person.js'
import { publicHostRedirect } from './public-host.js'
import { safeReturnPath } from './redirect.js'

/** How long a started sign-in may take before its transaction is forgotten. */
export const LOGIN_TTL_SECONDS = 600

/** What /auth/login keeps server-side for the one callback that may finish it. */
interface LoginTransaction {
  state: string
  nonce: string
  codeVerifier: string
  returnPath: string
}

const transactionKey = (id: string): string => `login:${id}`

const REFUSALS: Record<Refusal, string> = {
  'no-email': 'The provider did not share an email address for this account.',
  unverified: 'This account\'s email address is not verified.',
  malformed: 'This account\'s email address is not one Gemgate accepts.',
  'not-allowed': 'This account is not allowed to use this gateway.',
}

function signedInAlreadyPage (): Html {
  return layout('Signed in', html`<section class="card"><h1>You are already signed in</h1>
<p>This sign-in link was used before (a reload or the back button); your session is fine.</p>
<p class="row"><a class="button" href="/">Continue</a><a class="button secondary" href="/auth/status">Your gateway status</a></p></section>`)
}

/** A sign-in that cannot finish: ends on the error page with this status, and no session. */
class SignInFailure extends Error {
  constructor (readonly status: number, readonly title: string, message: string, options?: ErrorOptions) {
    super(message, options)
  }
}

function authorizeParameters (app: FastifyInstance, transaction: LoginTransaction, codeChallenge: string): Record<string, string> {
  return {
    ...Object.fromEntries(new URLSearchParams(app.config.oidc.authParams)),
    redirect_uri: `${app.config.publicUrl}/auth/callback`,
    scope: app.config.oidc.scopes,
    response_type: 'code',
    state: transaction.state,
    nonce: transaction.nonce,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
  }
}

async function startLogin (app: FastifyInstance, request: FastifyRequest<{ Querystring: { rd?: string } }>, reply: FastifyReply): Promise<FastifyReply> {
  const configuration = await app.provider.configuration()
  const transaction: LoginTransaction = {
    state: oidc.randomState(),
    nonce: oidc.randomNonce(),
    codeVerifier: oidc.randomPKCECodeVerifier(),
    returnPath: safeReturnPath(request.query.rd, app.config.publicUrl),
  }
  const transactionId = randomBytes(32).toString('base64url')
  await app.store.set(transactionKey(transactionId), JSON.stringify(transaction), LOGIN_TTL_SECONDS * 1000)
  const codeChallenge = await oidc.calculatePKCECodeChallenge(transaction.codeVerifier)
  const url = oidc.buildAuthorizationUrl(configuration, authorizeParameters(app, transaction, codeChallenge))
  reply.setCookie(app.cookieNames.login, transactionId, cookieOptions(app.cookieNames, LOGIN_TTL_SECONDS))
  return reply.header('cache-control', 'no-store').redirect(url.href, 302)
}

async function takeTransaction (app: FastifyInstance, request: FastifyRequest): Promise<LoginTransaction> {
  const raw = request.cookies[app.cookieNames.login]
  const unsigned = raw === undefined ? null : request.unsignCookie(raw)
  if (unsigned === null || !unsigned.valid || unsigned.value === null) {
    throw new SignInFailure(400, 'Sign-in could not be finished', 'This sign-in was not started in this browser, or it took too long. ' +
      `If you opened the gateway at another address than ${app.config.publicUrl} (127.0.0.1 instead of localhost, say), open ${app.config.publicUrl} instead. Please start again.`)
  }
  // Atomic take-and-delete: a replayed callback finds nothing.
  const text = await app.store.take(transactionKey(unsigned.value))
  if (text === null) throw new SignInFailure(400, 'Sign-in could not be finished', 'This sign-in has already been used or has expired. Please start again.')
  return JSON.parse(text) as LoginTransaction
}

function callbackUrl (app: FastifyInstance, request: FastifyRequest): URL {
  // Built from PUBLIC_URL, never from Host or X-Forwarded-*: it must match what the provider saw.
  const url = new URL(`${app.config.publicUrl}/auth/callback`)
  url.search = new URL(request.url, 'http://localhost').search
  return url
}

async function exchangeCode (app: FastifyInstance, request: FastifyRequest, transaction: LoginTransaction) {
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
type Claims = EmailClaims & { sub: string, name?: unknown }

async function identityClaims (app: FastifyInstance, tokens: Tokens): Promise<Claims> {
  const claims = tokens.claims()!
  if (claims.email !== undefined) return claims as Claims
  // Some providers keep email out of the ID token; their userinfo endpoint has it.
  const userinfo = await oidc.fetchUserInfo(await app.provider.configuration(), tokens.access_token, claims.sub)
  return { ...userinfo, sub: claims.sub } as Claims
}

async function finishLogin (app: FastifyInstance, request: FastifyRequest<{ Querystring: Record<string, string | undefined> }>, reply: FastifyReply): Promise<FastifyReply> {
  const transaction = await takeTransaction(app, request)
  if (request.query.error !== undefined) {
    throw new SignInFailure(403, 'Sign-in was not completed', `The sign-in provider answered: ${request.query.error_description ?? request.query.error}`)
  }
  const tokens = await exchangeCode(app, request, transaction)
  const claims = await identityClaims(app, tokens)
  const refusal = checkEmail(claims, app.config)
  if (refusal !== null) {
    request.log.info({ refusal }, 'sign-in refused by the allow-list')
    const who = typeof claims.email === 'string' ? ` (signed in at the provider as ${claims.email})` : ''
    throw new SignInFailure(403, 'Access denied', `${REFUSALS[refusal]}${who} If you have another account, sign in again with it.`)
  }
  const personId = personIdFor(app.config.oidc.issuer, claims.sub)
  await app.profiles.save(personId, { sub: claims.sub, email: String(claims.email), name: typeof claims.name === 'string' ? claims.name : String(claims.email) })
  await app.vault.save(personId, claims.sub, {
    accessToken: tokens.access_token,
    ...(tokens.refresh_token === undefined ? {} : { refreshToken: tokens.refresh_token }),
    expiresAt: Date.now() + (tokens.expiresIn() ?? 3600) * 1000,
    ...(tokens.scope === undefined ? {} : { scope: tokens.scope }),
  })
  await app.startSession(reply, personId)
  request.log.info({ person: personId }, 'signed in')
  return reply.header('cache-control', 'no-store').redirect(transaction.returnPath, 302)
}

/** GET /auth/login and GET /auth/callback: the authorization-code flow with PKCE, state and nonce. */
export default fp(async function loginPlugin (app) {
  app.get<{ Querystring: { rd?: string } }>('/auth/login', async (request, reply) => {
    const elsewhere = publicHostRedirect(request, app.config.publicUrl)
    if (elsewhere !== undefined) return reply.header('cache-control', 'no-store').redirect(elsewhere, 302)
    return await startLogin(app, request, reply)
  })

  app.get<{ Querystring: Record<string, string | undefined> }>('/auth/callback', async (request, reply) => {
    clearCookie(reply, app.cookieNames, app.cookieNames.login)
    // The callback URL carries the code and state: never leak it to the next page's origin.
    reply.header('referrer-policy', 'no-referrer')
    try {
      return await finishLogin(app, request, reply)
    } catch (error) {
      if (!(error instanceof SignInFailure)) throw error
      // A replayed or stale callback in a browser that is signed in: still refused, but their session is fine.
      const signedIn = await app.identify(request).then((identity) => identity?.via === 'session', () => false)
      if (signedIn && error.status === 400) return sendPage(reply, error.status, signedInAlreadyPage())
      return sendPage(reply, error.status, errorPage(error.title, error.message))
    }
  })
}, { name: 'gemgate-login', dependencies: ['gemgate-sessions'] })
