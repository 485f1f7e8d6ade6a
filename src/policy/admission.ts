import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Identity } from '../auth/identity.js'
import { BadRequestError, ForbiddenError, ModelNotAllowedError, ServiceUnavailableError, withExtras } from '../errors.js'
import { readStreamed, type RequestBody } from '../proxy/body.js'
import { MODEL_IN_PATH } from '../proxy/usage.js'
import type { LimitCheck } from './checks.js'
import { denialReason } from './metrics.js'
import { Enforcer, MIN_ANSWER_TOKENS, StoreDownError, type Admitted, type CallEstimate, type Reservation } from './enforcer.js'
import { DEFAULT_MAX_OUTPUT_TOKENS, FEE_TOOLS, GEMINI_BODY, MAX_DECOMPRESSED_BYTES, bareModelName, bodyAsRead, decompressed, jsonObject, longPrompt, serverTools, type BodyShape, type PromptEstimate } from './request-body.js'
import { modelAllowed } from './rules.js'
import { describeLimit, limitHeadersOf, quotaExceeded, rateLimitHeaders } from './answers.js'
import { CACHE_MAKING, DYNAMIC_ROUTE, EMBEDDING, FREE, FREE_WRITE, GENERATING, MODEL_IN_BODY, MODEL_LIST, UNPRICED_RESOURCE, decoded, isWrite, modelCall } from './routes.js'
import type { UsageMetadata } from './usage.js'

/** What the proxy does with an admitted call: forward `body`, and settle once the usage is known. */
export interface Admission {
  /** The body to forward: the client's, or with `generationConfig.maxOutputTokens` lowered to what the budget pays for. */
  readonly body: RequestBody
  /** The answer's usageMetadata (SSE: the last chunk's), for the model Google says served it, and the resource it names (a context cache made); the first call counts. */
  settle: (usage: UsageMetadata, modelVersion?: string, name?: string) => void
  /**
   * Present for a call under a token or dollar limit: Google bills a generation it has begun
   * whether or not its client stays to read it, so such a call is not cancelled when its client
   * leaves; the gateway reads Google's answer to its end and settles with the usage reported. The
   * proxy then calls this exactly once, when the call is over: with Google's status and whether its
   * answer came whole, or with the error status when no answer came (the client left before the
   * call went upstream, Google failed). Without it, the call is over when the client's response closes.
   */
  readonly ended?: (status: number, whole: boolean) => void
}

/** A JSON request body's media type, with or without parameters. */
const JSON_TYPE = /^application\/json\s*(?:;|$)/i
/** After a call ended unsettled, how long the usage tap may still report (a compressed body finishing). */
const SETTLE_GRACE_MS = 1_000
/** The metric label of a Live session's admission: its model is named only in its first message. */
const LIVE_LABEL = 'live'

/**
 * The `model` a JSON body names (`gemini-3-flash-preview` or `models/…`), or its `agent`
 * (`undefined` when it names none, null when it cannot be read), the body as parsed, and the body
 * to forward: a JSON one as read ({@link bodyAsRead}: a model named twice must reach Google as
 * the one the allow-list checked). The forwarded Content-Length follows.
 */
function readModel (request: FastifyRequest, body: RequestBody): { model: string | undefined | null, body: RequestBody, json?: Record<string, unknown> } {
  if (body.kind === 'none') return { model: undefined, body }
  if (body.kind === 'streamed') return { model: null, body }
  const json = jsonObject(body.bytes)
  if (json === undefined) return { model: undefined, body }
  const bytes = bodyAsRead(json)
  request.headers['content-length'] = String(bytes.length)
  return { model: bareModelName(json.model ?? json.agent), body: { kind: 'kept', bytes }, json }
}

function denied (enforcer: Enforcer, identity: Identity, model: string): Error {
  const rule = enforcer.ruleFor(identity)
  enforcer.metrics.call(rule?.name ?? 'none', enforcer.prices.labelOf(model), 'denied')
  enforcer.metrics.denials.inc({ reason: 'model' })
  return new ModelNotAllowedError(`The model ${model} is not allowed ${identity.keyLimits?.models === undefined ? 'for you' : 'for this key'} by the gateway's policy${rule === null ? '' : ` (rule ${rule.name})`}.`)
}

/** Throws ModelNotAllowedError (403) when the policy does not let `identity` call `model`. */
export function checkModel (enforcer: Enforcer, identity: Identity, model: string): void {
  if (!modelAllowed(model, enforcer.ruleFor(identity)?.limits.models, identity.keyLimits?.models)) throw denied(enforcer, identity, model)
}

/** Refuses a call whose body names a model the caller may not use (or a body too large to read for it); the body to forward, as read. */
function checkBodyModel (enforcer: Enforcer, request: FastifyRequest, identity: Identity, path: string, body: RequestBody): RequestBody {
  const globs = enforcer.ruleFor(identity)?.limits.models
  if ((globs === undefined && identity.keyLimits?.models === undefined) || !MODEL_IN_BODY.test(path)) return body
  const read = readModel(request, body)
  if (read.model === null) throw denied(enforcer, identity, '(a body too large to check)')
  if (read.model !== undefined && !modelAllowed(read.model, globs, identity.keyLimits?.models)) throw denied(enforcer, identity, read.model)
  return read.body
}

/**
 * A context cache being made: once Google names it, the tools it was made with are remembered
 * (Google never shows a cache's tools, and every call naming the cache runs them), from its body
 * as read (`json`). A body the gateway could not read leaves the cache of unknown making, which may
 * hold any.
 */
function rememberCacheTools (enforcer: Enforcer, admission: Admission, json: Record<string, unknown> | undefined): Admission {
  if (json === undefined) return admission
  const tools = serverTools(json.tools) ?? []
  return {
    ...admission,
    settle: (usage, modelVersion, name) => {
      admission.settle(usage, modelVersion)
      if (name !== undefined) enforcer.contextCaches?.remember(name, tools).catch(() => { /* the cache counts as of unknown making */ })
    },
  }
}

/** x-ratelimit-* on a call that reserves nothing: what this replica knows of the caller's limits. */
export async function knownLimitHeaders (enforcer: Enforcer, reply: FastifyReply, identity: Identity): Promise<void> {
  if (enforcer.checksOf(identity, Date.now()).length === 0) return
  const { checks, remaining } = await enforcer.remaining(identity)
  rateLimitHeaders(reply, checks, remaining)
}

const PASS_SETTLE = (): void => {}

/** A call that reserves nothing (settles nothing), answered with what this replica knows of the caller's limits. */
async function withKnownLimitHeaders (enforcer: Enforcer, reply: FastifyReply, identity: Identity, body: RequestBody): Promise<Admission> {
  await knownLimitHeaders(enforcer, reply, identity)
  return { body, settle: PASS_SETTLE }
}

/**
 * Admits one API call, or throws: 403 for a model the policy does not allow, 429 over a limit,
 * 503 when the store is down and POLICY_ON_STORE_FAILURE=closed. An admitted call holds a
 * reservation until it is settled; an error gives it back, a stream the client abandoned without
 * usage is charged its prompt, and a whole answer without readable usage is charged as reserved.
 * Answers synchronously when it can (a model call with no limit, or one admitted from a lease
 * held in process): the steady state costs no promise per call. Throws rather than rejects when
 * it refuses without asking the store.
 */
export function admit (enforcer: Enforcer, request: FastifyRequest, reply: FastifyReply, identity: Identity, path: string, body: RequestBody): Admission | Promise<Admission> {
  const call = modelCall(path)
  const unpriced = call === null && request.method === 'POST' ? UNPRICED_RESOURCE.exec(path) : null
  if (unpriced !== null) {
    // A file search store names no model; an interaction names one (or an agent), or is checked as naming none.
    const read = unpriced[1] !== undefined ? { model: undefined, body, json: undefined } : readModel(request, body)
    const model = unpriced[1] !== undefined ? undefined : read.model ?? '(none)'
    const admitted = admitUnpriced(enforcer, reply, identity, { model, what: path.slice(path.lastIndexOf('/') + 1).replace(/^[^:]+(?=:)/, '') }, read.body)
    return CACHE_MAKING.test(path) ? admitted.then((admission) => rememberCacheTools(enforcer, admission, read.json)) : admitted
  }
  const named = call === null ? MODEL_IN_PATH.exec(path) : null
  if (named !== null) {
    const model = decoded(named[1]!)
    if (request.method === 'POST') return admitUnpriced(enforcer, reply, identity, { model, what: `models/${model}${path.slice(named.index + named[0].length)}` }, body)
    checkModel(enforcer, identity, model)
  }
  if (call === null && isWrite(request.method) && !FREE_WRITE.test(path)) {
    const read = readModel(request, body)
    const model = DYNAMIC_ROUTE.exec(path)?.[1] ?? (read.model === null ? '(a body too large to check)' : read.model)
    return admitUnpriced(enforcer, reply, identity, { model, what: path.replace(/^\/(?:upload\/)?[^/]+\//, '') }, read.body)
  }
  if (call === null) {
    if (MODEL_LIST.test(path) && (enforcer.ruleFor(identity)?.limits.models !== undefined || identity.keyLimits?.models !== undefined)) {
      throw new BadRequestError(`List models at ${path.slice(0, path.indexOf('/', 1))}/models: only that list shows the models the gateway's policy allows you.`)
    }
    return withKnownLimitHeaders(enforcer, reply, identity, checkBodyModel(enforcer, request, identity, path, body))
  }
  const rule = enforcer.ruleFor(identity)
  checkModel(enforcer, identity, call.model)
  const generating = GENERATING.has(call.method ?? '')
  if (call.method === undefined || FREE.has(call.method)) return withKnownLimitHeaders(enforcer, reply, identity, body)
  if (!generating && !EMBEDDING.has(call.method)) return admitUnpriced(enforcer, reply, identity, { model: call.model, what: `:${call.method}` }, body)
  const checks = enforcer.checksOf(identity, Date.now())
  if (checks.length === 0) return unlimited(enforcer, identity, call.model, body)
  return reserveCall(enforcer, request, reply, identity, { model: call.model, generating, ruleName: rule?.name ?? 'key' }, body, checks, GEMINI_BODY)
}

/**
 * A call the gateway cannot price ahead (Imagen's :predict, Veo's :predictLongRunning, batch
 * mode's :batchGenerateContent, a method it does not know: billed per image, per second of video,
 * or later): one request against the request rates, and refused (403) when a token or dollar
 * limit applies, which it would escape.
 */
export async function admitUnpriced (enforcer: Enforcer, reply: FastifyReply, identity: Identity, call: { model: string | undefined, what: string }, body: RequestBody): Promise<Admission> {
  if (call.model !== undefined) checkModel(enforcer, identity, call.model)
  const model = call.model ?? 'other'
  const checks = enforcer.checksOf(identity, Date.now())
  if (checks.length === 0) return unlimited(enforcer, identity, model, body)
  const ruleName = enforcer.ruleFor(identity)?.name ?? 'key'
  const label = enforcer.prices.labelOf(model)
  const spend = checks.find((entry) => entry.check.resource !== 'requests')
  if (spend !== undefined) throw unpriced(enforcer, { ruleName, label }, `The gateway cannot price ${call.what} calls ahead`, spend)
  const verdict = await reserveOrRefuse(enforcer, identity, { model, promptTokens: 0, maxOutput: 0, minOutput: 0 }, ruleName, label)
  rateLimitHeaders(reply, verdict.reservation.checks, verdict.remaining)
  enforcer.metrics.call(ruleName, label, 'admitted')
  // Settled against its one request: any usage Google reports is booked, the request not counted twice.
  return settleOnce(enforcer, reply, identity, model, body, verdict.reservation, 0)
}

/** True when any of `checks` limits tokens or dollars, not only requests. */
const spendLimited = (checks: LimitCheck[]): boolean => checks.some((entry) => entry.check.resource !== 'requests')

/** True when a token or dollar limit applies to `identity` (their calls are then read to their end, see Admission.ended). */
export function limitsSpend (enforcer: Enforcer, identity: Identity): boolean {
  return spendLimited(enforcer.checksOf(identity, Date.now()))
}

/** The 403 for a call the gateway cannot price, whose cost `spend` (a token or dollar limit) would not hold for: counted as denied. */
function unpriced (enforcer: Enforcer, call: { ruleName: string, label: string }, why: string, spend: LimitCheck): Error {
  enforcer.metrics.call(call.ruleName, call.label, 'denied')
  enforcer.metrics.denials.inc({ reason: 'unpriced' })
  return new ForbiddenError(`${why}, so your ${describeLimit(spend)} (gateway policy rule ${call.ruleName}) would not hold for them: they are not allowed for you.`)
}

/** A call with no limit to check: charged once its usage is known. */
function unlimited (enforcer: Enforcer, identity: Identity, model: string, body: RequestBody): Admission {
  return { body, settle: (usage, modelVersion) => { enforcer.settle(identity, modelVersion ?? model, usage) } }
}

/**
 * Admits a metered call to `model` whose body `shape` reads (generateContent's, or the
 * OpenAI-compatible surface's chat completions and embeddings): the allow-list, then the same
 * check-and-reserve, lowering of the output cap and settlement as every metered call.
 */
export async function admitModelCall (enforcer: Enforcer, request: FastifyRequest, reply: FastifyReply, identity: Identity,
  call: { model: string, generating: boolean }, body: RequestBody, shape: BodyShape): Promise<Admission> {
  checkModel(enforcer, identity, call.model)
  const checks = enforcer.checksOf(identity, Date.now())
  if (checks.length === 0) return unlimited(enforcer, identity, call.model, body)
  return reserveCall(enforcer, request, reply, identity, { ...call, ruleName: enforcer.ruleFor(identity)?.name ?? 'key' }, body, checks, shape)
}

/** Reserves `wanted`, or throws: 429 over a limit, 503 when the store is down and POLICY_ON_STORE_FAILURE=closed. */
async function reserveOrRefuse (enforcer: Enforcer, identity: Identity, wanted: CallEstimate, ruleName: string, label: string): Promise<Admitted> {
  let verdict
  try {
    verdict = await enforcer.reserve(identity, wanted)
  } catch (error) {
    if (!(error instanceof StoreDownError)) throw error
    throw withExtras(new ServiceUnavailableError('Usage limits cannot be checked right now; try again shortly.', { cause: error }), { headers: { 'retry-after': '1' } })
  }
  if (!verdict.admitted) {
    enforcer.metrics.call(ruleName, label, 'limited')
    enforcer.metrics.denials.inc({ reason: denialReason(verdict.refused) })
    throw quotaExceeded(verdict.refused, verdict.retryAfterMs, ruleName, await refusedLimitHeaders(enforcer, identity))
  }
  return verdict
}

/**
 * The x-ratelimit-* headers of a 429, read from the store: this replica's own figures are behind
 * whatever refused the call (other replicas' calls). None when the store cannot say.
 */
async function refusedLimitHeaders (enforcer: Enforcer, identity: Identity): Promise<Record<string, string>> {
  return limitHeadersOf(await enforcer.remaining(identity, true).catch(() => undefined))
}

/** Charges one Live turn: its tokens and cost, as Google reported them. */
export type TurnCharge = (model: string, usage: UsageMetadata) => void

/**
 * Admits a Live session at its handshake: the session is one request against the request rates,
 * reserved ahead (429 like a call over a limit, before anything reaches Google). Its turns cannot
 * be reserved ahead (a turn's size is known only when Google reports it): each is charged its
 * tokens and cost as it ends, and no further request.
 */
export async function admitSession (enforcer: Enforcer, identity: Identity): Promise<TurnCharge> {
  const checks = enforcer.checksOf(identity, Date.now())
  if (checks.some((entry) => entry.check.resource === 'requests')) {
    await reserveOrRefuse(enforcer, identity, { model: LIVE_LABEL, promptTokens: 0, maxOutput: 0, minOutput: 0 }, enforcer.ruleFor(identity)?.name ?? 'key', LIVE_LABEL)
  }
  return (model, usage) => {
    // The session's request was counted at its handshake: a turn settles against it, so it adds none.
    const counted: Reservation = { checks: enforcer.checksOf(identity, Date.now()), amounts: { requests: 1, tokens: 0, nanoUsd: 0 }, output: 0, local: false }
    enforcer.settle(identity, model, usage, counted)
  }
}

/**
 * Estimates and reserves a metered call. In the steady state the reservation comes from the
 * lease held in process, and the admission is returned as it is, without a promise.
 */
function reserveCall (enforcer: Enforcer, request: FastifyRequest, reply: FastifyReply, identity: Identity,
  call: { model: string, generating: boolean, ruleName: string }, body: RequestBody, checks: LimitCheck[], shape: BodyShape): Admission | Promise<Admission> {
  const countsTokens = spendLimited(checks)
  if (countsTokens && !JSON_TYPE.test(request.headers['content-type'] ?? 'application/json')) {
    // Google also takes protobuf (binary, or JSPB's positional arrays), which names its output cap and answer count where no JSON reader looks.
    throw new BadRequestError('Under a token or dollar limit the gateway reads a call\'s cost from its body: send it as JSON (Content-Type: application/json).')
  }
  const encoding = request.headers['content-encoding']
  if (countsTokens && body.kind === 'streamed') {
    // Too large to keep for a retry: read whole (up to Google's request limit) for its estimate
    // all the same. Its size alone says nothing of a compressed prompt, nor of the media a file
    // reference in it brings (a link to an hour of video is about a million tokens).
    return readStreamed(body, MAX_DECOMPRESSED_BYTES).then((bytes) => {
      if (bytes === undefined) throw new BadRequestError(`The request body is larger than ${MAX_DECOMPRESSED_BYTES / 1024 / 1024} MB, the most Google takes in one request.`)
      request.headers['content-length'] = String(bytes.length)
      return reserveCall(enforcer, request, reply, identity, call, { kind: 'kept', bytes }, checks, shape)
    })
  }
  if (countsTokens && encoding !== undefined && body.kind === 'kept') {
    // A compressed body is read like any other, and forwarded as read (the same JSON, uncompressed,
    // so its cap can be lowered too). One the gateway cannot decompress (another encoding, two in
    // a row, a broken one) is refused: its size says nothing of the prompt Google would read.
    return decompressed(body.bytes, encoding).then((bytes) => {
      if (bytes === undefined) {
        throw new BadRequestError(`Under a token or dollar limit the gateway reads a call's cost from its body, and cannot decompress this one: send it uncompressed, or in one of gzip, deflate, br or zstd, at most ${MAX_DECOMPRESSED_BYTES / 1024 / 1024} MB once decompressed.`)
      }
      delete request.headers['content-encoding']
      request.headers['content-length'] = String(bytes.length)
      return reserveEstimated(enforcer, request, reply, identity, call, { kind: 'kept', bytes }, checks, shape)
    })
  }
  return reserveEstimated(enforcer, request, reply, identity, call, body, checks, shape)
}

function reserveEstimated (enforcer: Enforcer, request: FastifyRequest, reply: FastifyReply, identity: Identity,
  call: { model: string, generating: boolean, ruleName: string }, body: RequestBody, checks: LimitCheck[], shape: BodyShape): Admission | Promise<Admission> {
  const countsTokens = spendLimited(checks)
  const estimated: PromptEstimate = countsTokens ? shape.estimate(body.kind === 'kept' ? body.bytes : undefined, Number(request.headers['content-length'] ?? 0)) : { promptTokens: 0 }
  // A long prompt is counted by Google too: text can be denser than its estimate (see longPrompt).
  const long = countsTokens && call.generating && body.kind === 'kept' ? longPrompt(estimated, body.bytes) : undefined
  const estimate = long ?? estimated
  // Tools that run at Google bring input of their own (pages, search results, code's output),
  // billed as prompt: the call is reserved for all the model can read in one call.
  const tools = call.generating ? estimate.serverTools : undefined
  if (tools !== undefined) refuseFeeTools(enforcer, call, tools, checks)
  // Media's tokens cannot be told from its bytes: Google counts them (a generation's; an
  // embedding's parts stay estimated). The estimate stands when it is higher.
  const countable = (estimate.media === true || long !== undefined) && call.generating && estimate.json !== undefined ? shape.countable?.(estimate.json) : undefined
  if (countable !== undefined || tools !== undefined) refuseSpentRequests(enforcer, identity, call)
  const counted = countable === undefined ? undefined : enforcer.mediaPrompts?.tokens(identity, call.model, countable, request.id)
  // Google counts a context cache's tokens in the prompt of every call that names it.
  const cached = estimate.cachedContent === undefined ? undefined : enforcer.contextCaches?.tokens(identity, estimate.cachedContent, request.id)
  // A context cache's tools run in every call naming it, and the call can name none of its own.
  const cacheTools = tools === undefined && cached !== undefined && call.generating ? enforcer.contextCaches?.serverTools(String(estimate.cachedContent)) : undefined
  const whole = tools !== undefined
    ? enforcer.inputLimits?.tokens(identity, call.model, request.id)
    : cacheTools?.then(async (held) => {
      if (held === undefined) return undefined
      refuseFeeTools(enforcer, call, held, checks)
      return await enforcer.inputLimits?.tokens(identity, call.model, request.id)
    })
  // A generation's text that Google does not count is reserved for the most it can be: a token per
  // byte (digits and characters the tokenizer does not know), so no prompt runs past its reservation.
  const own = counted === undefined && call.generating ? estimate.maxPromptTokens ?? estimate.promptTokens : estimate.promptTokens
  if (counted === undefined && cached === undefined && whole === undefined) {
    return reserveFor(enforcer, request, reply, identity, call, body, countsTokens, shape, own === estimate.promptTokens ? estimate : { ...estimate, promptTokens: own })
  }
  return Promise.all([counted, cached, whole]).then(([media, cache, limit]) => reserveFor(enforcer, request, reply, identity, call, body, countsTokens, shape,
    // All of a call's input, the cache and what its tools bring included, is at most what the model reads.
    { ...estimate, promptTokens: Math.max(Math.max(own, media?.tokens ?? 0) + (cache ?? 0), limit ?? 0), audioTokens: media?.audio }))
}

/** Refuses (403) a call to `model` with these `tools` (a Gemini `tools` list) whose fees `identity`'s dollar limits cannot price: a Live setup's. */
export function checkTools (enforcer: Enforcer, identity: Identity, model: string, tools: unknown): void {
  const names = serverTools(tools)
  if (names !== undefined) refuseFeeTools(enforcer, { model, ruleName: enforcer.ruleFor(identity)?.name ?? 'key' }, names, enforcer.checksOf(identity, Date.now()))
}

/**
 * Tools Google bills per query or grounded prompt (search, maps), a fee in no usage Google
 * reports nor in the price table: refused (403) under a dollar limit, which would not hold for
 * them. Under token limits alone their tokens are reserved like any tool's.
 */
function refuseFeeTools (enforcer: Enforcer, call: { model: string, ruleName: string }, tools: readonly string[], checks: LimitCheck[]): void {
  const tool = tools.find((name) => FEE_TOOLS.has(name))
  const dollars = tool === undefined ? undefined : checks.find((entry) => entry.check.resource === 'nanoUsd')
  if (dollars === undefined) return
  throw unpriced(enforcer, { ruleName: call.ruleName, label: enforcer.prices.labelOf(call.model) },
    `Google bills calls with ${tool!} per search query or grounded prompt, a fee outside the usage it reports, and the gateway cannot price it`, dollars)
}

/** A caller this replica knows to be out of requests gets the 429 a reservation would give, before Google is asked anything for the call. */
function refuseSpentRequests (enforcer: Enforcer, identity: Identity, call: { model: string, ruleName: string }): void {
  const spent = enforcer.spentRequests(identity)
  if (spent === undefined) return
  enforcer.metrics.call(call.ruleName, enforcer.prices.labelOf(call.model), 'limited')
  enforcer.metrics.denials.inc({ reason: denialReason(spent.entry) })
  // What this replica knows refused the call: its x-ratelimit-* headers say the same.
  throw quotaExceeded(spent.entry, spent.retryAfterMs, call.ruleName, limitHeadersOf(enforcer.knownRemaining(identity)))
}

function reserveFor (enforcer: Enforcer, request: FastifyRequest, reply: FastifyReply, identity: Identity,
  call: { model: string, generating: boolean, ruleName: string }, body: RequestBody, countsTokens: boolean, shape: BodyShape, estimate: PromptEstimate): Admission | Promise<Admission> {
  // Only a body in hand, in plain JSON (or not read yet), can be rewritten: any other must fit whole.
  const rewritable = (estimate.json !== undefined || estimate.unread === true) && request.headers['content-encoding'] === undefined
  // Each answer asked for (candidateCount, n) may be as long as the cap: the call's output is their sum.
  const candidates = estimate.candidates ?? 1
  const maxOutput = call.generating && countsTokens ? (estimate.maxOutputTokens ?? DEFAULT_MAX_OUTPUT_TOKENS) * candidates : 0
  const wanted: CallEstimate = { model: call.model, promptTokens: estimate.promptTokens, audioTokens: estimate.audioTokens, maxOutput, minOutput: rewritable ? Math.min(MIN_ANSWER_TOKENS * candidates, maxOutput) : maxOutput }
  const label = enforcer.prices.labelOf(call.model)
  // A body the gateway parsed is forwarded as it read it (bodyAsRead), a cap or count named in it
  // as the one reserved for: a key named twice (tools, contents, a cap) or under two spellings
  // could otherwise be read by Google as what the gateway did not reserve for.
  const normalize = countsTokens && rewritable && estimate.json !== undefined
  const capped = call.generating && (estimate.maxOutputTokens !== undefined || estimate.candidates !== undefined)
  const metered: MeteredCall = { model: call.model, generating: call.generating, ruleName: call.ruleName, label, maxOutput, candidates, countsTokens, normalize, capped }
  const leased = enforcer.reserveFromLease(identity, wanted)
  if (leased !== undefined) return reserved(enforcer, request, reply, identity, metered, body, estimate, shape, leased)
  return reserveOrRefuse(enforcer, identity, wanted, call.ruleName, label).then((verdict) => reserved(enforcer, request, reply, identity, metered, body, estimate, shape, verdict))
}

/**
 * A call being reserved: its model and rule, its price label, the output it asks for, whether any
 * limit counts tokens, whether its body is forwarded as read (it was parsed), and whether it names
 * its own output cap or answer count.
 */
interface MeteredCall { model: string, generating: boolean, ruleName: string, label: string, maxOutput: number, candidates: number, countsTokens: boolean, normalize: boolean, capped: boolean }

/** A reserved call: its x-ratelimit-* headers, its body with the output cap lowered when the budget is short, and how it settles. */
function reserved (enforcer: Enforcer, request: FastifyRequest, reply: FastifyReply, identity: Identity,
  call: MeteredCall, body: RequestBody, estimate: PromptEstimate, shape: BodyShape, verdict: Admitted): Admission {
  const { label, maxOutput, countsTokens } = call
  const { reservation } = verdict
  rateLimitHeaders(reply, reservation.checks, verdict.remaining)
  let forwarded = body
  const lowered = call.generating && countsTokens && reservation.output < maxOutput
  if (lowered || call.normalize) {
    const json = estimate.json ?? (body.kind === 'kept' ? jsonObject(body.bytes) : undefined)
    if (json === undefined) {
      // Estimated by its size, and not JSON after all: no cap can be set in it (nor would Google answer it).
      enforcer.release(identity.personId, reservation)
      throw new BadRequestError('The request body is not a JSON object.')
    }
    // What each answer may be: the output reserved, shared by the answers asked for.
    const each = Math.floor(reservation.output / call.candidates)
    const bytes = lowered || call.capped ? shape.withMaxOutput(json, each, estimate.candidates) : shape.asRead?.(json) ?? bodyAsRead(json)
    forwarded = { kind: 'kept', bytes }
    // The client's Content-Length no longer describes the body: the forwarded headers carry the new one.
    request.headers['content-length'] = String(bytes.length)
    if (lowered) reply.header('x-gemgate-max-output-tokens', String(each))
  }
  enforcer.metrics.call(call.ruleName, label, lowered ? 'lowered' : 'admitted')
  // Under a token or dollar limit the call is read to its end even if its client leaves: Google bills it whole.
  return settleOnce(enforcer, reply, identity, call.model, forwarded, reservation, estimate.promptTokens, countsTokens)
}

function settleOnce (enforcer: Enforcer, reply: FastifyReply, identity: Identity, model: string, body: RequestBody, reservation: Reservation, promptTokens: number, readsToEnd = false): Admission {
  let settled = false
  const settle = (usage: UsageMetadata, modelVersion?: string): void => {
    if (settled) return
    settled = true
    enforcer.settle(identity, modelVersion ?? model, usage, reservation)
  }
  // A call over without the usage it reported, settled once the usage tap had its grace to report.
  const ended = (status: number, whole: boolean): void => {
    if (settled) return
    setTimeout(() => {
      if (settled) return
      if (status >= 300) {
        // An error costs nothing: the reservation goes back.
        settled = true
        enforcer.release(identity.personId, reservation)
      } else if (!whole) {
        // Google bills a prompt it began to answer.
        settle({ promptTokenCount: promptTokens })
      } else {
        // An answer whose usage could not be read (a field mask without usageMetadata, alt=proto)
        // is charged as reserved: hiding the usage must not make a call free.
        settle({ promptTokenCount: promptTokens, candidatesTokenCount: reservation.output })
      }
    }, SETTLE_GRACE_MS).unref()
  }
  if (readsToEnd) return { body, settle, ended }
  const response = reply.raw
  response.once('close', () => { ended(response.statusCode, response.writableFinished) })
  return { body, settle }
}
