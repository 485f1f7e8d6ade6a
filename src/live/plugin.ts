import { readFile } from 'node:fs/promises'
import { rootCertificates } from 'node:tls'
import fp from 'fastify-plugin'
import { Gauge } from 'prom-client'
import WebSocket, { WebSocketServer } from 'ws'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import type { Identity } from '../auth/identity.js'
import { ephemeralTokenOf } from '../ephemeral/plugin.js'
import type { EphemeralToken } from '../ephemeral/token-store.js'
import type { TurnCharge } from '../policy/plugin.js'
import { BadRequestError, ForbiddenError, QuotaExceededError } from '../errors.js'
import { routeUpgrades, upgradeOf } from '../sidecar/app-websocket.js'
import { DEFAULT_CONNECT_TIMEOUT } from '../proxy/upstream.js'
import { credentialStillValid } from './credential.js'
import { liveRpc, LIVE_ROUTES, upstreamLiveUrl, type LiveRpc } from '../proxy/live-target.js'
import { closeSocket, LiveRelay } from './relay.js'
import { liveSetup, liveUsage } from './messages.js'

/** Largest single WebSocket message either side may send (Live audio and video frames are far smaller). */
export const MAX_LIVE_MESSAGE_BYTES = 16 * 1024 * 1024
/** Close code for a session refused or ended by policy (Google's, for bad credentials too). */
export const POLICY_CLOSE = 1008
/** A WebSocket close reason holds at most 123 bytes. */
const MAX_CLOSE_REASON = 123
/** Close code when the upstream fails. */
const INTERNAL_CLOSE = 1011
const PASSED_HEADERS = ['user-agent', 'x-goog-api-client'] as const

/**
 * The Live API over WebSocket: upgrades at `/ws/google.ai.generativelanguage.*.BidiGenerateContent[Constrained]`
 * (also `//ws/…`, as the JS SDK sends it) from any credential the SDKs send, relayed frame for
 * frame to UPSTREAM_URL with the person's token (or UPSTREAM_API_KEY, for the `live` surface).
 * Usage is metered from `usageMetadata`; sign-out, a revoked key or token, an expired ephemeral
 * token end the session with close code 1008 and a reason.
 */
export default fp(async function livePlugin (app) {
  const { upstream, publicUrl } = app.config
  const ownOrigin = new URL(publicUrl).origin
  const upstreamTimeoutMs = upstream.timeoutSeconds * 1000
  const useApiKey = upstream.apiKeySurfaces.includes('live') ? upstream.apiKey : undefined
  const ca = upstream.caFile === undefined ? undefined : [...rootCertificates, await readFile(upstream.caFile, 'utf8')]
  const server = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_LIVE_MESSAGE_BYTES })
  const sessions = new Set<LiveRelay>()
  new Gauge({ name: 'gemgate_live_sessions', help: 'Open Live API sessions on this replica.', registers: [app.metrics], collect () { this.set(sessions.size) } })
  // Before upgraded sockets are cut (routeUpgrades): open sessions are told why.
  app.addHook('preClose', async () => { for (const session of sessions) session.end(1001, 'the gateway is shutting down') })
  routeUpgrades(app)

  function refuse (request: FastifyRequest, reply: FastifyReply, reason: string): FastifyReply {
    reply.hijack()
    const { socket, head } = upgradeOf(request)!
    server.handleUpgrade(request.raw, socket, head, (client) => { closeSocket(client, POLICY_CLOSE, reason) })
    return reply
  }

  async function upstreamHeaders (request: FastifyRequest, identity: Identity): Promise<Record<string, string>> {
    const headers: Record<string, string> = { 'x-request-id': request.id }
    if (useApiKey !== undefined) headers['x-goog-api-key'] = useApiKey
    else headers.authorization = `Bearer ${await app.vault.accessToken(identity.personId)}`
    if (upstream.quotaProject !== undefined) headers['x-goog-user-project'] = upstream.quotaProject
    for (const name of PASSED_HEADERS) {
      const value = request.headers[name]
      if (typeof value === 'string') headers[name] = value
    }
    return headers
  }

  function connectUpstream (rpc: LiveRpc, headers: Record<string, string>, client: WebSocket): WebSocket {
    const socket = new WebSocket(upstreamLiveUrl(upstream.url, rpc), {
      headers, perMessageDeflate: false, maxPayload: MAX_LIVE_MESSAGE_BYTES, handshakeTimeout: DEFAULT_CONNECT_TIMEOUT,
      ...(ca === undefined ? {} : { ca }), rejectUnauthorized: true,
    })
    socket.once('unexpected-response', (req, res) => {
      const status = res.statusCode ?? 502
      closeSocket(client, status === 401 || status === 403 ? POLICY_CLOSE : INTERNAL_CLOSE, `The Gemini Live API refused the session (HTTP ${status}).`)
      req.destroy()
    })
    socket.on('error', (error) => {
      closeSocket(client, INTERNAL_CLOSE, 'The Gemini Live API could not be reached.')
      app.log.warn({ err: error }, 'live upstream failed')
    })
    return socket
  }

  /** Why the policy refuses a setup for `model` with `tools` to this person (a close reason), or undefined. */
  function setupRefusal (identity: Identity, model: string | undefined, tools: unknown): string | undefined {
    try {
      if (model !== undefined) app.policy.checkModel(identity, model)
      app.policy.checkTools(identity, model ?? 'unknown', tools)
      return undefined
    } catch (error) {
      return (error as Error).message.slice(0, MAX_CLOSE_REASON)
    }
  }

  /** A turn that used up a budget ends the session: the next would run past it. */
  function endWhenBudgetSpent (identity: Identity, session: LiveRelay): void {
    app.policy.exhaustedBudget(identity).then((budget) => {
      if (budget !== undefined) session.end(POLICY_CLOSE, `Your ${budget.replaceAll('_', ' ')} budget is used up.`)
    }, (error: unknown) => { app.log.debug({ err: error }, 'live budget check failed') })
  }

  function relay (request: FastifyRequest, identity: Identity, token: EphemeralToken | undefined, chargeTurn: TurnCharge, client: WebSocket, upstreamSocket: WebSocket): void {
    let model = token?.model
    const session: LiveRelay = new LiveRelay(client, upstreamSocket, {
      setup: (data) => {
        const setup = liveSetup(data, token?.setup)
        if ('reason' in setup) return { code: 1007, reason: setup.reason }
        model = setup.model
        // The policy's model allow-list (and what it cannot price) decides here, once the model is known.
        const refusal = setupRefusal(identity, model, setup.tools)
        if (refusal !== undefined) return { code: POLICY_CLOSE, reason: refusal }
        return { data: setup.data }
      },
      upstreamMessage: (data) => {
        const usage = liveUsage(data)
        if (usage === undefined) return false
        // Per turn: the same recorders as REST calls (usage totals, the policy's budgets).
        app.usage.record(identity.personId, model, usage)
        chargeTurn(model ?? 'unknown', usage)
        endWhenBudgetSpent(identity, session)
        return true
      },
      // Under a token or dollar limit a turn the client left is still billed by Google: the gateway stays for its usage.
      lingerMs: () => app.policy.limitsSpend(identity) ? upstreamTimeoutMs : 0,
      closed: () => { sessions.delete(session); untrack(); clearTimeout(expiry) },
    })
    sessions.add(session)
    const untrack = app.liveConnections.add({
      personId: identity.personId,
      stillValid: async () => await credentialStillValid(app, identity),
      end: (reason) => { session.end(POLICY_CLOSE, reason) },
    })
    const expiry = token === undefined ? undefined : setTimeout(() => { session.end(POLICY_CLOSE, 'The ephemeral token expired.') }, token.expiresAt - Date.now()).unref()
    request.log.info({ personId: identity.personId, via: identity.via }, 'live session opened')
  }

  async function identifyLive (request: FastifyRequest): Promise<Identity | string> {
    try {
      return await app.identify(request) ?? 'Not signed in: send a gateway key or an ephemeral token.'
    } catch (error) {
      if ((error as FastifyError).statusCode === 401) return (error as Error).message
      throw error
    }
  }

  async function live (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const rpc = liveRpc(request.raw.url ?? '')
    if (rpc === null) {
      const asked = (request.params as { rpc?: string }).rpc ?? ''
      throw new BadRequestError(`The gateway does not carry ${asked.slice(0, 120)} over WebSocket: only google.ai.generativelanguage.{v1,v1beta,v1alpha}.GenerativeService.BidiGenerateContent[Constrained].`)
    }
    if (upgradeOf(request) === undefined) throw new BadRequestError('This is the Live API: connect with a WebSocket upgrade.')
    const identity = await identifyLive(request)
    if (typeof identity === 'string') return refuse(request, reply, identity)
    // A session cookie rides along on any page's WebSocket: only the gateway's own pages may use it.
    if (identity.via === 'session' && request.headers.origin !== ownOrigin) {
      throw new ForbiddenError('Cross-site WebSocket refused: a session cookie opens Live sessions only from the gateway\'s own origin.')
    }
    // A budget already spent refuses the session before it reaches Google.
    const spent = await app.policy.exhaustedBudget(identity)
    if (spent !== undefined) throw new QuotaExceededError(`Your ${spent.replaceAll('_', ' ')} budget is used up.`)
    // The session counts as one request, refused here like a call over its rate.
    const chargeTurn = await app.policy.admitSession(identity)
    const headers = await upstreamHeaders(request, identity)
    reply.hijack()
    const { socket, head } = upgradeOf(request)!
    server.handleUpgrade(request.raw, socket, head, (client) => {
      relay(request, identity, ephemeralTokenOf(request), chargeTurn, client, connectUpstream(rpc, headers, client))
    })
    return reply
  }

  for (const route of LIVE_ROUTES) app.get(route, live)
}, { name: 'gemgate-live', dependencies: ['gemgate-identity', 'gemgate-connections', 'gemgate-usage', 'gemgate-ephemeral', 'gemgate-keys', 'gemgate-policy'] })
