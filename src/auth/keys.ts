import { randomBytes } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { audit } from '../audit/plugin.js'
import { limitsSchema, type Limits } from '../config/policy.js'
import { BadRequestError, googleError, NotFoundError, SignInAgainError, UnauthenticatedError } from '../errors.js'
import type { Identity } from './identity.js'
import { FORM_TOKEN_FIELD, KeyGuard } from './key-guard.js'
import { KEY_PATTERN, KEY_PREFIX, KeyStore, type GatewayKey } from './key-store.js'
import { html, layout, sendPage, type Html } from './pages.js'
import { presentedCredential } from './presented.js'

export { KeyStore, revokeAllKeys, type GatewayKey } from './key-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Personal gateway keys (`gk_…`), stored only as hashes. */
    keys: KeyStore
    /** Say why a key's own limits would be wider than its owner's (one line each); the policy adds one. */
    keyLimitGuards: KeyLimitGuard[]
  }
}

/** Reasons (one line each) why `limits` may not be given to a key of `identity`; empty when they may. */
export type KeyLimitGuard = (identity: Identity, limits: Limits) => string[]

interface CreateBody { name: string, expiresInDays?: number, limits?: unknown, formToken?: string, submission?: string }

function createSchema (maxDays: number) {
  return {
    body: {
      type: 'object',
      required: ['name'],
      additionalProperties: false,
      properties: {
        name: { type: 'string', minLength: 1, maxLength: 100, pattern: '\\S' },
        expiresInDays: { type: 'integer', minimum: 1, maximum: maxDays },
        limits: { type: 'object' },
        [FORM_TOKEN_FIELD]: { type: 'string', maxLength: 100 },
        // The form's one-time id: a reload of "key created" resends it and makes no second key.
        submission: { type: 'string', pattern: '^[A-Za-z0-9_-]{16,64}$' },
      },
    },
  }
}
const idSchema = { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{16}$' } } } }

function iso (epochMs: number | null): string | null {
  return epochMs === null ? null : new Date(epochMs).toISOString()
}

function listed (key: GatewayKey) {
  return { id: key.id, name: key.name, createdAt: iso(key.createdAt), lastUsedAt: iso(key.lastUsedAt), expiresAt: iso(key.expiresAt), ...(key.limits === undefined ? {} : { limits: key.limits }) }
}

/** A key's own limits from the create body: valid, and never wider than the owner's. */
function keyLimits (app: FastifyInstance, identity: Identity, body: unknown): Limits | undefined {
  if (body === undefined) return undefined
  const parsed = limitsSchema.safeParse(body)
  const problems = parsed.success
    ? app.keyLimitGuards.flatMap((guard) => guard(identity, parsed.data))
    : parsed.error.issues.map((issue) => issue.code === 'unrecognized_keys' ? `unknown limit ${issue.keys.join(', ')}` : `${issue.path.join('.')}: ${issue.message}`)
  if (problems.length > 0) throw new BadRequestError(`limits: ${problems.join('; ')}.`)
  return parsed.data
}

/** The first `gk_` value among x-goog-api-key, `Authorization: Bearer` and `?key=`; null when none is a gateway key. */
export function presentedKey (request: FastifyRequest): string | null {
  return presentedCredential(request, isKeyShaped, true)
}

const isKeyShaped = (value: string): boolean => value.startsWith(KEY_PREFIX)

async function requireSession (app: FastifyInstance, request: FastifyRequest): Promise<Identity> {
  const identity = await app.identify(request)
  if (identity?.via !== 'session') throw new UnauthenticatedError(`Gateway keys are managed from a browser session: sign in at ${app.config.publicUrl}/auth/login.`)
  return identity
}

function wantsPage (request: FastifyRequest): boolean {
  return request.headers['content-type']?.startsWith('application/x-www-form-urlencoded') === true
}

function keysSection (keys: GatewayKey[], maxDays: number, formToken: string | null, revoked: string | undefined): Html {
  const rows = keys.map((key) => html`<tr><td>${key.name}</td><td>${iso(key.createdAt)?.slice(0, 10)}</td>
<td>${key.lastUsedAt === null ? 'never' : `${iso(key.lastUsedAt)?.slice(0, 16).replace('T', ' ')} UTC`}</td><td>${key.expiresAt === null ? 'never' : iso(key.expiresAt)?.slice(0, 10)}</td>
<td><form class="inline" method="post" action="/auth/keys/${key.id}/revoke" data-confirm="Revoke the key “${key.name}”? Programs using it stop working at once."><button class="danger" type="submit" aria-label="Revoke ${key.name}">Revoke</button></form></td></tr>`)
  return html`<section class="card" id="keys"><h2>Your gateway keys</h2>
<p class="muted">Use a key as the API key of <code>@google/genai</code> with this gateway as its base URL.</p>
${keys.length === 0 ? html`<p class="muted">No keys yet.</p>` : html`<table><thead><tr><th>Name</th><th>Created</th><th>Last used</th><th>Expires</th><th></th></tr></thead><tbody>${rows}</tbody></table>`}
${revoked === undefined ? '' : html`<p class="notice" role="status">Key “${revoked}” revoked: it no longer works.</p>`}
${formToken === null ? html`<p class="muted">Open this page in a browser tab to create a key.</p>` : html`<form method="post" action="/auth/keys" class="row"><input type="hidden" name="${FORM_TOKEN_FIELD}" value="${formToken}"><input type="hidden" name="submission" value="${randomBytes(16).toString('base64url')}"><input name="name" required maxlength="100" placeholder="Key name" aria-label="Key name">
<input name="expiresInDays" type="number" min="1" max="${maxDays}" placeholder="Days valid (default ${maxDays})" aria-label="Days valid (default ${maxDays})"><button type="submit">Create key</button></form>`}</section>`
}

function createdPage (key: GatewayKey, secret: string): Html {
  return layout('Key created', html`<section class="card"><h1>Key “${key.name}” created</h1>
<p>Copy it now: it is shown only this once.</p><p class="key"><code>${secret}</code></p>
<p><a class="button" href="/auth/status">Back to status</a></p></section>`)
}

function alreadyCreatedPage (): Html {
  return layout('Key already created', html`<section class="card"><h1>This key was already created</h1>
<p>The form was sent again (a reload, or a second click), so no second key was made. Its secret was shown only once: if you did not copy it, revoke it and create a new one.</p>
<p><a class="button" href="/auth/status#keys">Back to status</a></p></section>`)
}

/** How long a form's one-time id is remembered: longer than anyone keeps a "key created" page open to reload. */
const SUBMISSION_TTL_MS = 24 * 3600 * 1000

async function keyRoutes (app: FastifyInstance, guard: KeyGuard): Promise<void> {
  // The status page's forms post urlencoded; nothing else here takes them.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 }, (_request, body, done) => {
    done(null, Object.fromEntries([...new URLSearchParams(body as string)].filter(([, value]) => value !== '')))
  })

  app.post<{ Body: CreateBody }>('/auth/keys', { schema: createSchema(app.config.keyMaxDays) }, async (request, reply) => {
    const identity = await requireSession(app, request)
    guard.checkCreate(request, identity, request.body[FORM_TOKEN_FIELD])
    const { submission } = request.body
    if (submission !== undefined && !await app.store.setIfAbsent(`key-form:${identity.personId}:${submission}`, '1', SUBMISSION_TTL_MS)) {
      reply.header('cache-control', 'no-store')
      if (wantsPage(request)) return sendPage(reply, 409, alreadyCreatedPage())
      return await reply.code(409).send(googleError(409, 'This form was already submitted; no second key was created.'))
    }
    const limits = keyLimits(app, identity, request.body.limits)
    const { key, secret } = await app.keys.create(identity.personId, request.body.name.trim(), request.body.expiresInDays, limits)
    request.log.info({ keyId: key.id }, 'gateway key created')
    audit(request, { event: 'key.created', outcome: 'success', actor: identity.personId, actorEmail: identity.email, subject: key.id, ...(key.expiresAt === null ? {} : { detail: { expiresAt: iso(key.expiresAt)! } }) })
    reply.header('cache-control', 'no-store')
    if (wantsPage(request)) return sendPage(reply, 201, createdPage(key, secret))
    return await reply.code(201).send({ id: key.id, name: key.name, key: secret, expiresAt: iso(key.expiresAt) })
  })

  app.get('/auth/keys', async (request, reply) => {
    const identity = await requireSession(app, request)
    reply.header('cache-control', 'no-store')
    return { keys: (await app.keys.list(identity.personId)).map(listed) }
  })

  const revoke = async (request: FastifyRequest<{ Params: { id: string } }>): Promise<void> => {
    const identity = await requireSession(app, request)
    if (!await app.keys.revoke(identity.personId, request.params.id)) throw new NotFoundError('You have no key with this id.')
    request.log.info({ keyId: request.params.id }, 'gateway key revoked')
    audit(request, { event: 'key.revoked', outcome: 'success', actor: identity.personId, actorEmail: identity.email, subject: request.params.id })
  }
  app.delete<{ Params: { id: string } }>('/auth/keys/:id', { schema: idSchema }, async (request, reply: FastifyReply) => {
    await revoke(request)
    return await reply.code(204).send()
  })
  app.post<{ Params: { id: string } }>('/auth/keys/:id/revoke', { schema: idSchema }, async (request, reply) => {
    const identity = await requireSession(app, request)
    const name = (await app.keys.list(identity.personId)).find((key) => key.id === request.params.id)?.name
    await revoke(request)
    // The key's name comes back as feedback; the status page escapes it like any text.
    return await reply.redirect(`/auth/status?revoked=${encodeURIComponent(name ?? '')}#keys`, 303)
  })
}

/**
 * Personal gateway keys: a credential resolver for `gk_…` keys, /auth/keys to create, list and
 * revoke them from a browser session, and the status page's keys section. A key works only
 * while its person still has tokens, and all of them are revoked when the person signs out.
 */
export default fp(async function keysPlugin (app) {
  const keys = new KeyStore(app.store, app.personChanges, app.config.keyMaxDays)
  const guard = new KeyGuard(app.config.cookieSecrets)
  app.decorate('keys', keys)
  app.decorate('keyLimitGuards', [] as KeyLimitGuard[])

  async function resolveKey (secret: string, cacheKey: string | null): Promise<Identity> {
    const ticket = app.identityCache.ticket()
    const key = await keys.verify(secret)
    if (key === null || cacheKey === null) throw new UnauthenticatedError('This gateway key is unknown, expired or revoked.')
    const [profile, tokens] = await Promise.all([app.profiles.load(key.personId), app.vault.load(key.personId)])
    if (profile === null || tokens === null) throw new SignInAgainError(app.config.publicUrl)
    const identity: Identity = { ...profile, personId: key.personId, via: 'key', keyId: key.id, ...(key.limits === undefined ? {} : { keyLimits: key.limits }) }
    app.identityCache.set(cacheKey, key.personId, identity, ticket, key.expiresAt ?? Infinity)
    return identity
  }

  app.credentialResolvers.push((request) => {
    const secret = presentedKey(request)
    if (secret === null) return null
    // Cached by the key itself, as sessions are by their signed cookie: a hit skips the hash too.
    const cacheKey = KEY_PATTERN.test(secret) ? `key:${secret}` : null
    return (cacheKey === null ? undefined : app.identityCache.get(cacheKey)) ?? resolveKey(secret, cacheKey)
  })
  app.signOutHooks.push(async (personId) => { await keys.revokeAll(personId) })
  // An unexpired key keeps its person's tokens worth refreshing (INACTIVE_PERSON_DAYS).
  app.vault.addAccessCheck(async (personId) => (await keys.list(personId)).length > 0)
  app.statusSections.push(async (identity, request) => keysSection(await keys.list(identity.personId), app.config.keyMaxDays, guard.tokenFor(request, identity),
    (request.query as { revoked?: string }).revoked?.slice(0, 100)))
  await app.register(async (scope) => { await keyRoutes(scope, guard) })
}, { name: 'gemgate-keys', dependencies: ['gemgate-identity', 'gemgate-sessions', 'gemgate-logout', 'gemgate-status'] })
