import fp from 'fastify-plugin'
import * as oidc from 'openid-client'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { audit } from '../audit/plugin.js'
import { clearCookie } from './cookies.js'
import { html, layout, sendPage } from './pages.js'

/** A sign-out form carries nothing worth more than this. */
const FORM_BODY_LIMIT = 1024

/**
 * Ends everything a person's sign-in gave: tokens at the provider and here, sessions, keys (and
 * through the announcement, their live streams and WebSockets). `actor`: who asked (an administrator).
 */
export async function signOut (app: FastifyInstance, request: FastifyRequest, personId: string, actor = personId): Promise<void> {
  const record = await app.vault.load(personId)
  if (record !== null) await revokeAtProvider(app, request, [record.refreshToken, record.accessToken])
  await app.vault.delete(personId)
  await endEverythingFor(app, personId)
  request.log.info({ person: personId }, 'signed out')
  audit(request, { event: 'sign-out', outcome: 'success', actor, subject: personId })
}

/**
 * Deletes what points at a person: sessions here, keys through the hooks. With `startedBefore`
 * (a lost refresh token) sessions of a sign-in after that time stay.
 */
async function endEverythingFor (app: FastifyInstance, personId: string, startedBefore?: number): Promise<void> {
  await app.sessions.deleteAllFor(personId, startedBefore)
  await Promise.all(app.signOutHooks.map(async (hook) => { await hook(personId) }))
}

async function revokeAtProvider (app: FastifyInstance, request: FastifyRequest, tokens: Array<string | undefined>): Promise<void> {
  try {
    const configuration = await app.provider.configuration()
    if (configuration.serverMetadata().revocation_endpoint === undefined) return
    for (const token of tokens) {
      if (token !== undefined) await oidc.tokenRevocation(configuration, token)
    }
  } catch (error) {
    // The local sign-out goes ahead: the tokens are deleted here even if the provider is down.
    request.log.warn({ reason: (error as Error).message }, 'token revocation at the provider failed')
  }
}

/** Whether a browser navigates here (a form post, a link) and wants a page rather than JSON. */
export function wantsPage (request: FastifyRequest): boolean {
  return request.headers['sec-fetch-mode'] === 'navigate' || (request.headers.accept ?? '').includes('text/html')
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Run when a person signs out, for what else points at them (gateway keys). */
    signOutHooks: Array<(personId: string) => Promise<void>>
  }
}

/** POST /auth/logout signs out (same origin only, by the CSRF hook); GET only asks to confirm. */
export default fp(async function logoutPlugin (app) {
  app.decorate('signOutHooks', [])
  // The provider refused the refresh token (invalid_grant): the person must sign in again,
  // so their sessions and keys end too rather than coming back after the next sign-in.
  // Not awaited: while Redis is down the subscription waits for it, and the replica still starts.
  app.addHook('onReady', async () => {
    app.vault.onSignedOut((personId, at) => {
      endEverythingFor(app, personId, at).catch((error: unknown) => app.log.warn({ person: personId, reason: String(error) }, 'ending sessions after sign-out failed'))
    }).catch((error: unknown) => { app.log.debug({ err: error }, 'no longer waiting for sign-out announcements') })
  })

  app.get('/auth/logout', async (request, reply) => {
    // Nothing to confirm for someone already signed out: say so, rather than ask.
    const identity = await app.identify(request).catch(() => null)
    if (identity?.via !== 'session') return await reply.redirect('/auth/status?signed-out', 303)
    return sendPage(reply, 200, layout('Sign out', html`<section class="card"><h1>Sign out?</h1>
<p>This signs you out of Gemgate everywhere and ends your gateway keys.</p>
<form method="post" action="/auth/logout"><button class="danger" type="submit">Sign out</button></form></section>`))
  })

  // An encapsulated scope: plain HTML forms post urlencoded (or text/plain) bodies, which this
  // route accepts and ignores, without a root parser that other routes' parsers would clash with.
  await app.register(async (scope) => {
    scope.addContentTypeParser(['application/x-www-form-urlencoded', 'text/plain'], { parseAs: 'string', bodyLimit: FORM_BODY_LIMIT }, (_request, _body, done) => { done(null, null) })
    scope.post('/auth/logout', async (request, reply) => {
      const identity = await app.identify(request).catch(() => null)
      if (identity?.via === 'session') await signOut(app, request, identity.personId)
      clearCookie(reply, app.cookieNames, app.cookieNames.session)
      reply.header('cache-control', 'no-store')
      // Not "/": with an app fronted, "/" is the app, which would start a new sign-in at once.
      return wantsPage(request) ? await reply.redirect('/auth/status?signed-out', 303) : await reply.code(204).send()
    })
  })
}, { name: 'gemgate-logout', dependencies: ['gemgate-sessions'] })
