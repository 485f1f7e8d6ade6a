import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { TokenRecord } from '../tokens/vault.js'
import type { Identity } from './identity.js'
import { html, layout, PAGE_SCRIPT, PAGE_SCRIPT_PATH, sendPage, type Html } from './pages.js'

/** A section of the status page for a signed-in person (keys, usage, …). */
export type StatusSection = (identity: Identity, request: FastifyRequest) => Promise<Html>

declare module 'fastify' {
  interface FastifyInstance {
    /** Sections other parts of the gateway add to the signed-in status page, in order. */
    statusSections: StatusSection[]
  }
}

const MINUTE_MS = 60_000

/** "in 42 minutes", "3 hours ago": how far a moment is from now, roughly. */
export function relativeTime (epochMs: number, now = Date.now()): string {
  const minutes = Math.round((epochMs - now) / MINUTE_MS)
  const [amount, unit] = Math.abs(minutes) < 1 ? [0, ''] : Math.abs(minutes) < 90 ? [Math.abs(minutes), 'minute']
    : Math.abs(minutes) < 36 * 60 ? [Math.round(Math.abs(minutes) / 60), 'hour'] : [Math.round(Math.abs(minutes) / 1440), 'day']
  if (amount === 0) return 'just now'
  const span = `${amount} ${unit}${amount === 1 ? '' : 's'}`
  return minutes > 0 ? `in ${span}` : `${span} ago`
}

function when (epochMs: number | undefined): Html {
  if (epochMs === undefined) return html`<span class="muted">never</span>`
  const date = new Date(epochMs)
  return html`${relativeTime(epochMs)} <span class="muted">(<time datetime="${date.toISOString()}">${date.toUTCString()}</time>)</span>`
}

/** What the signed-out page offers: back into the fronted app when there is one, else this page. */
function signedOutPage (justSignedOut: boolean, appFronted: boolean): Html {
  const notice = justSignedOut ? html`<p class="notice" role="status">You have been signed out.</p>` : ''
  return layout('Sign in', html`<section class="card">${notice}<h1>Gemini, with your own <span class="nowrap">sign-in</span></h1>
<p>Gemgate lets you and your internal apps call the Gemini API as yourself. Sign in once; the gateway keeps your tokens safe and fresh, and you can make personal keys for scripts and services.</p>
<p><a class="button" href="/auth/login?rd=${appFronted ? '/' : '/auth/status'}">Sign in</a></p></section>`)
}

function identityCard (identity: Identity): Html {
  const initial = [...(identity.name || identity.email)][0]?.toUpperCase() ?? '?'
  return html`<section class="card" aria-labelledby="who"><div class="who"><div class="avatar" aria-hidden="true">${initial}</div>
<div><h1 id="who">Signed in as ${identity.name}</h1><p class="muted">${identity.email}</p></div></div>
<dl class="spaced"><dt>Subject</dt><dd><code>${identity.sub}</code></dd></dl></section>`
}

/** "Google" when people sign in with Google, else the provider's host: the offline demo's is not Google. */
function providerName (issuer: string): string {
  return new URL(issuer).hostname === 'accounts.google.com' ? 'Google' : 'sign-in provider'
}

function tokenCard (record: TokenRecord | null, provider: string): Html {
  const valid = record !== null && record.expiresAt > Date.now()
  const state = record === null ? html`<span class="badge warn">none: sign in again</span>`
    : valid ? html`<span class="badge ok">valid</span>` : html`<span class="badge warn">expired: refreshed on next use</span>`
  return html`<section class="card" aria-labelledby="token"><h2 id="token">Your ${provider} access</h2>
<p class="muted">The gateway holds your tokens, encrypted, and refreshes them before they expire. Your browser and your apps never see them.</p>
<dl><dt>State</dt><dd>${state}</dd>
<dt>Valid until</dt><dd>${when(record?.expiresAt)}</dd>
<dt>Last refreshed</dt><dd>${when(record?.lastRefreshAt)}</dd>
${record?.lastRefreshError === undefined ? '' : html`<dt>Last refresh error</dt><dd class="warn">${record.lastRefreshError}</dd>`}
</dl></section>`
}

function apiCard (publicUrl: string, model: string): Html {
  const curl = `curl -N '${publicUrl}/v1beta/models/${model}:streamGenerateContent?alt=sse' \\
  -H "x-goog-api-key: $GEMGATE_KEY" -H 'content-type: application/json' \\
  -d '{"contents":[{"parts":[{"text":"Hello"}]}]}'`
  const sdk = `import { GoogleGenAI } from '@google/genai'

const ai = new GoogleGenAI({
  apiKey: process.env.GEMGATE_KEY,
  httpOptions: { baseUrl: '${publicUrl}' },
})
const stream = await ai.models.generateContentStream({ model: '${model}', contents: 'Hello' })
for await (const chunk of stream) process.stdout.write(chunk.text ?? '')`
  return html`<section class="card" id="api" aria-labelledby="api-title"><h2 id="api-title">Use the API</h2>
<p>Point any Gemini client at this gateway and use one of your keys as its API key. Put the key in <code>GEMGATE_KEY</code>.</p>
<div class="key" data-label="the base URL"><code>${publicUrl}</code></div>
<h3>curl</h3>
<div class="snippet" data-label="the curl command"><pre><code>${curl}</code></pre></div>
<h3>@google/genai</h3>
<div class="snippet" data-label="the @google/genai example"><pre><code>${sdk}</code></pre></div></section>`
}

async function signedInPage (app: FastifyInstance, identity: Identity, request: FastifyRequest): Promise<Html> {
  const record = await app.vault.load(identity.personId)
  const sections = await Promise.all(app.statusSections.map(async (section) => await section(identity, request)))
  const back = app.config.app.upstreamUrl === undefined ? '' : html`<p><a class="button secondary" href="/">← Back to the app</a></p>`
  return layout('Status', html`${back}${identityCard(identity)}${tokenCard(record, providerName(app.config.oidc.issuer))}${sections}${apiCard(app.config.publicUrl, app.config.defaultModel)}
<section class="card"><form method="post" action="/auth/logout" enctype="text/plain" class="row signout" data-sign-out>
<span class="muted">Signing out ends your sessions everywhere and revokes your keys.</span><button class="secondary" type="submit">Sign out</button></form></section>`)
}

/** GET /auth/status (and GET / while no app is fronted): who you are, token state, a way in or out. */
export default fp(async function statusPlugin (app) {
  app.decorate('statusSections', [] as StatusSection[])
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const identity = await app.identify(request).catch(() => null)
    if (identity === null || identity.via !== 'session') {
      return sendPage(reply, 200, signedOutPage('signed-out' in (request.query as object), app.config.app.upstreamUrl !== undefined))
    }
    return sendPage(reply, 200, await signedInPage(app, identity, request))
  }
  app.get('/auth/status', handler)
  if (app.config.app.upstreamUrl === undefined) app.get('/', handler)
  app.get(PAGE_SCRIPT_PATH, async (_request, reply) => await reply
    .header('content-type', 'text/javascript; charset=utf-8')
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', 'public, max-age=300')
    .send(PAGE_SCRIPT))
}, { name: 'gemgate-status', dependencies: ['gemgate-sessions'] })
