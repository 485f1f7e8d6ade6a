import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Identity } from './identity.js'
import { html, layout, sendPage, type Html } from './pages.js'

/** A section of the status page for a signed-in person (keys, usage, …). */
export type StatusSection = (identity: Identity, request: FastifyRequest) => Promise<Html>

declare module 'fastify' {
  interface FastifyInstance {
    /** Sections other parts of the gateway add to the signed-in status page, in order. */
    statusSections: StatusSection[]
  }
}

function when (epochMs: number | undefined): Html {
  if (epochMs === undefined) return html`<span class="muted">never</span>`
  const date = new Date(epochMs)
  return html`<time datetime="${date.toISOString()}">${date.toUTCString()}</time>`
}

function signedOutPage (): Html {
  return layout('Sign in', html`<section class="card"><h1>Gemgate</h1>
<p>Sign in to use the Gemini API through this gateway and to manage your gateway keys.</p>
<p><a class="button" href="/auth/login?rd=/auth/status">Sign in</a></p></section>`)
}

async function signedInPage (app: FastifyInstance, identity: Identity, request: FastifyRequest): Promise<Html> {
  const record = await app.vault.load(identity.personId)
  const valid = record !== null && record.expiresAt > Date.now()
  const sections = await Promise.all(app.statusSections.map(async (section) => await section(identity, request)))
  return layout('Status', html`<section class="card"><h1>Signed in as ${identity.name}</h1>
<dl><dt>Email</dt><dd>${identity.email}</dd><dt>Subject</dt><dd><code>${identity.sub}</code></dd></dl></section>
<section class="card"><h2>Access token</h2><dl>
<dt>State</dt><dd class="${valid ? 'ok' : 'warn'}">${valid ? 'valid' : 'expired, refreshed on next use'}</dd>
<dt>Valid until</dt><dd>${when(record?.expiresAt)}</dd>
<dt>Last refreshed</dt><dd>${when(record?.lastRefreshAt)}</dd>
${record?.lastRefreshError === undefined ? '' : html`<dt>Last refresh error</dt><dd class="warn">${record.lastRefreshError}</dd>`}
</dl></section>
${sections}
<section class="card"><form method="post" action="/auth/logout"><button class="secondary" type="submit">Sign out</button></form></section>`)
}

/** GET /auth/status (and GET / while no app is fronted): who you are, token state, a way in or out. */
export default fp(async function statusPlugin (app) {
  app.decorate('statusSections', [] as StatusSection[])
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const identity = await app.identify(request).catch(() => null)
    if (identity === null || identity.via !== 'session') return sendPage(reply, 200, signedOutPage())
    return sendPage(reply, 200, await signedInPage(app, identity, request))
  }
  app.get('/auth/status', handler)
  if (app.config.app.upstreamUrl === undefined) app.get('/', handler)
}, { name: 'gemgate-status', dependencies: ['gemgate-sessions'] })
