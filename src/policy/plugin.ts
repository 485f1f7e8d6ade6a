import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Identity } from '../auth/identity.js'
import type { RequestBody } from '../proxy/body.js'
import { createUpstreamPool } from '../proxy/upstream.js'
import { admit, admitModelCall, admitSession, admitUnpriced, checkModel, checkTools, knownLimitHeaders, limitsSpend, type Admission, type TurnCharge } from './admission.js'
import { ContextCaches } from './context-caches.js'
import { MediaPrompts } from './media-prompts.js'
import { InputLimits } from './input-limits.js'
import { Enforcer } from './enforcer.js'
import { PolicyMetrics } from './metrics.js'
import { modelsListRoutes } from './models-route.js'
import { modelAllowed, widerThan } from './rules.js'
import { bareModelName, type BodyShape } from './request-body.js'
import type { UsageMetadata } from './usage.js'
import { upstreamCall } from './upstream-call.js'
import { policySection, policyView } from './views.js'

export type { Admission, TurnCharge } from './admission.js'
export type { UsageMetadata } from './usage.js'
export type { BodyShape } from './request-body.js'

/** How often a replica says it is alive, so each knows its share of the limits while Redis is down. */
export const REPLICA_HEARTBEAT_MS = 10_000
const REPLICA_TTL_MS = 3 * REPLICA_HEARTBEAT_MS
const REPLICAS_KEY = 'policy:replicas'

/** The policy as the rest of the gateway uses it. */
export interface Policy {
  /**
   * The one call before forwarding: checks the model allow-list, rates and budgets, reserves,
   * may lower maxOutputTokens in the body and sets the x-ratelimit-* headers on `reply`. Throws
   * 403, 429 or 503 in Google's shape. Synchronous when it can be (see admission.ts).
   */
  admit: (request: FastifyRequest, reply: FastifyReply, identity: Identity, path: string, body: RequestBody) => Admission | Promise<Admission>
  /**
   * The same for a metered call whose model the caller read and whose body `shape` reads (the
   * OpenAI-compatible surface): reserved ahead, its output cap lowered, settled once.
   */
  admitCall: (request: FastifyRequest, reply: FastifyReply, identity: Identity, call: { model: string, generating: boolean }, body: RequestBody, shape: BodyShape) => Promise<Admission>
  /**
   * Admits a call the gateway cannot price ahead (`what`: `:predict`, `openai/images/generations`):
   * the model allow-list, one request against the request rates, and 403 when a token or dollar
   * limit applies (it would not hold).
   */
  admitUnpriced: (reply: FastifyReply, identity: Identity, call: { model: string | undefined, what: string }, body: RequestBody) => Promise<Admission>
  /**
   * Records usage metered outside admit/settle (OpenAI-compatible calls other than chat
   * completions and embeddings): person (`identity`), model, and Google's usageMetadata; charged
   * in full against the person's limits and booked for the day.
   */
  recordUsage: (identity: Identity, model: string, usage: UsageMetadata) => void
  /**
   * Admits a Live session at its handshake (one request against the request rates, reserved
   * ahead; throws 429 or 503 like admit) and answers how to charge its turns.
   */
  admitSession: (identity: Identity) => Promise<TurnCharge>
  /** Throws 403 (ModelNotAllowedError) when `identity` may not use `model`: for calls that name it outside a path (a Live setup). */
  checkModel: (identity: Identity, model: string) => void
  /** Throws 403 when a call to `model` with these `tools` (a Gemini `tools` list) has a cost the policy cannot price under `identity`'s limits: for a Live setup. */
  checkTools: (identity: Identity, model: string, tools: unknown) => void
  /** Whether a token or dollar limit applies to `identity`: a Live turn they leave is then still waited for (Google bills it). */
  limitsSpend: (identity: Identity) => boolean
  /** Whether `identity` may use `model` (`gemini-…` or `models/gemini-…`): for lists of models. */
  allows: (identity: Identity, model: string) => boolean
  /** The name of a budget `identity` has used up (a Live session then ends), or undefined. */
  exhaustedBudget: (identity: Identity) => Promise<string | undefined>
  readonly enforcer: Enforcer
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Rate limits, budgets and model allow-lists (issue 14). */
    policy: Policy
  }
}

/** Keeps this replica in the store's list of live replicas and counts them. */
function heartbeat (enforcer: Enforcer, app: FastifyInstance): void {
  const id = randomUUID()
  const beat = async (): Promise<void> => {
    const now = Date.now()
    try {
      await app.store.schedule(REPLICAS_KEY, id, now + REPLICA_TTL_MS)
      for (const gone of await app.store.due(REPLICAS_KEY, now, 100)) await app.store.unschedule(REPLICAS_KEY, gone)
      enforcer.replicas = Math.max(1, (await app.store.scheduleStats(REPLICAS_KEY)).size)
    } catch {
      // The last count stands while the store is down: that is when it is needed.
    }
  }
  let timer: NodeJS.Timeout | undefined
  app.addHook('onReady', async () => {
    await beat()
    timer = setInterval(() => { void beat() }, REPLICA_HEARTBEAT_MS).unref()
  })
  app.addHook('preClose', async () => {
    clearInterval(timer)
    await app.store.unschedule(REPLICAS_KEY, id).catch(() => {})
  })
}

/** The policy room: admission for the proxy, models.list filtering, limits on /auth/me and the status page. */
export default fp(async function policyPlugin (app) {
  const enforcer = new Enforcer(app.config, app.store, new PolicyMetrics(app.metrics), app.log.child({ component: 'policy' }))
  app.decorate('policy', {
    enforcer,
    // Their answers (admit's: an admission when it has one at once, else a promise) are passed on as they are.
    admit: (request, reply, identity, path, body) => admit(enforcer, request, reply, identity, path, body),
    admitCall: (request, reply, identity, call, body, shape) => admitModelCall(enforcer, request, reply, identity, call, body, shape),
    admitUnpriced: (reply, identity, call, body) => admitUnpriced(enforcer, reply, identity, call, body),
    admitSession: async (identity) => await admitSession(enforcer, identity),
    recordUsage: (identity, model, usage) => { enforcer.settle(identity, model, usage) },
    checkModel: (identity, model) => { checkModel(enforcer, identity, model) },
    checkTools: (identity, model, tools) => { checkTools(enforcer, identity, model, tools) },
    limitsSpend: (identity) => limitsSpend(enforcer, identity),
    allows: (identity, model) => modelAllowed(bareModelName(model) ?? model, enforcer.ruleFor(identity)?.limits.models, identity.keyLimits?.models),
    exhaustedBudget: async (identity) => {
      // Usage recorded a moment ago is still in the settle batch: count it first.
      await enforcer.settlements.flush()
      return (await enforcer.exhaustedBudget(identity))?.name
    },
  } satisfies Policy)
  app.addHook('preClose', async () => { await Promise.all([enforcer.flush(), enforcer.usage.flush()]) })
  // Every answer to a person with limits carries x-ratelimit-*: a refusal's and a failure's too
  // (a model not allowed, a body the policy cannot read, Google unreachable), as this replica
  // knows them. A hook on errors only: no cost on calls that succeed.
  app.addHook('onError', async (request, reply) => {
    const identity = request.identity
    if (identity === null || reply.hasHeader('x-ratelimit-limit-requests') || reply.hasHeader('x-ratelimit-limit-tokens')) return
    await knownLimitHeaders(enforcer, reply, identity).catch(() => { /* the store cannot say: none */ })
  })
  if (app.store.kind === 'redis') heartbeat(enforcer, app)

  app.keyLimitGuards.push((identity, limits) => widerThan(limits, enforcer.ruleFor(identity)?.limits ?? {}))
  app.personDetails.push(async (_personId, identity) => {
    if (identity === undefined) return {}
    const view = await policyView(enforcer, identity)
    return { limits: view.limits, policy: view }
  })
  app.statusSections.push(async (identity) => policySection(await policyView(enforcer, identity)))

  // The policy's own calls to Google: models.list (filtered), the size of a context cache a call
  // names, the prompt of a call that holds media, and the input limit of a model called with tools.
  const pool = await createUpstreamPool(app.config.upstream)
  app.addHook('onClose', async () => { await pool.close() })
  enforcer.contextCaches = new ContextCaches(async (identity, name, id) => await upstreamCall(app, pool, identity, { path: `/v1beta/${name}`, id }), app.store)
  enforcer.mediaPrompts = new MediaPrompts(async (identity, path, json, id) => await upstreamCall(app, pool, identity, { path, id, json }))
  enforcer.inputLimits = new InputLimits(async (identity, model, id) => await upstreamCall(app, pool, identity, { path: `/v1beta/models/${encodeURIComponent(model)}`, id }))
  // Always: a key may carry its own models without any rule.
  modelsListRoutes(app, pool)
}, { name: 'gemgate-policy', dependencies: ['gemgate-keys', 'gemgate-me', 'gemgate-status', 'gemgate-metrics'] })
