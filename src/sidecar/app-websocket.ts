import { ServerResponse, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { BadGatewayError, BadRequestError, ForbiddenError } from '../errors.js'
import { redactUrl } from '../ops/logger.js'
import { appResponseHeaders } from './app-headers.js'

/** The client's side of an upgrade while Fastify routes its request. */
export interface PendingUpgrade {
  socket: Duplex
  head: Buffer
}

/** What the app answered a handshake with: a switch of protocols, or an ordinary response. */
type Handshake =
  | { kind: 'upgrade', response: IncomingMessage, socket: Socket, head: Buffer }
  | { kind: 'response', response: IncomingMessage }

const pending = new WeakMap<IncomingMessage, PendingUpgrade>()

const routed = new WeakSet<object>()

/** The client's socket and first bytes of an upgrade, for a route that accepts it itself (the Live relay). */
export function upgradeOf (request: FastifyRequest): PendingUpgrade | undefined {
  return pending.get(request.raw)
}

/** The upgrade a request asks for, when it came in as one (a WebSocket handshake). */
export function isUpgrade (request: FastifyRequest): boolean {
  return pending.has(request.raw)
}

/** True when an `Upgrade` header names exactly the WebSocket protocol (any case). */
export function isWebSocketUpgrade (value: string | string[] | undefined): boolean {
  return typeof value === 'string' && value.trim().toLowerCase() === 'websocket'
}

/**
 * Refuses any upgrade but a WebSocket handshake: a GET asking for `websocket` alone, with no
 * body. Another protocol (h2c, TLS) would open a tunnel past the gateway's per-request checks,
 * and a body on a handshake is what lets one request hide inside another on the way to the app.
 */
export function assertWebSocketHandshake (request: FastifyRequest): void {
  const { headers } = request.raw
  if (request.method !== 'GET' || !isWebSocketUpgrade(headers.upgrade)) {
    throw new BadRequestError('Only WebSocket upgrades (GET with Upgrade: websocket) are forwarded to the app.')
  }
  const length = headers['content-length']
  if (headers['transfer-encoding'] !== undefined || (length !== undefined && length.trim() !== '0')) {
    throw new BadRequestError('A WebSocket handshake carries no body.')
  }
}

/**
 * Routes every HTTP upgrade through Fastify like any request, so identity, hooks and errors
 * apply before anything reaches the app: a refusal is an ordinary response written on the
 * socket, which is then closed. A route that accepts calls {@link proxyUpgrade}. Node's server
 * keeps counting upgraded sockets, so they are cut when the gateway starts closing; otherwise
 * close would wait for every WebSocket to end.
 */
export function routeUpgrades (app: FastifyInstance): void {
  // Both the app proxy and the Live relay take upgrades: one listener routes them all.
  if (routed.has(app.server)) return
  routed.add(app.server)
  const open = new Set<Duplex>()
  const onUpgrade = (raw: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => { socket.destroy() })
    pending.set(raw, { socket, head })
    const response = new ServerResponse(raw)
    response.shouldKeepAlive = false
    response.assignSocket(socket as Socket)
    response.once('finish', () => { socket.end() })
    socket.once('close', () => { open.delete(socket) })
    open.add(socket)
    app.routing(raw, response)
  }
  app.server.on('upgrade', onUpgrade)
  app.addHook('preClose', async () => {
    app.server.off('upgrade', onUpgrade)
    for (const socket of open) socket.destroy()
  })
}

/**
 * Refuses a handshake the session cookie signs in unless it comes from one of `origins`.
 * Browsers send the cookie with a WebSocket handshake from any page and no CORS applies: only
 * Origin tells the gateway's own pages from a sibling site's (cross-site WebSocket hijacking).
 */
export function assertHandshakeOrigin (request: FastifyRequest, origins: ReadonlySet<string>, publicUrl: string): void {
  if (!origins.has(request.headers.origin ?? '')) {
    throw new ForbiddenError(`A WebSocket signed in with the session must come from a page of ${publicUrl} (or APP_WEBSOCKET_ORIGINS).`)
  }
}

/**
 * Sends a handshake on a connection of its own (never a pooled one: a connection an app
 * answered without switching protocols may still be waiting for something, and must not carry
 * the next request), closed as soon as a non-101 answer has been read.
 */
function sendHandshake (target: URL, path: string, headers: Record<string, string | string[]>, timeoutMs: number): Promise<Handshake> {
  const options: RequestOptions = {
    host: target.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: target.port === '' ? undefined : Number(target.port),
    path,
    method: 'GET',
    headers,
    agent: false,
  }
  return new Promise((resolve, reject) => {
    const upstream = (target.protocol === 'https:' ? httpsRequest : httpRequest)(options)
    const timer = setTimeout(() => {
      upstream.destroy(Object.assign(new Error('the app did not answer the WebSocket handshake in time'), { code: 'ETIMEDOUT' }))
    }, timeoutMs)
    upstream.once('upgrade', (response, socket, head) => { clearTimeout(timer); resolve({ kind: 'upgrade', response, socket, head }) })
    upstream.once('response', (response) => {
      clearTimeout(timer)
      response.once('end', () => { upstream.destroy() })
      response.once('close', () => { upstream.destroy() })
      resolve({ kind: 'response', response })
    })
    upstream.once('error', (error) => { clearTimeout(timer); reject(error) })
    upstream.end()
  })
}

/** Ends a relayed WebSocket, saying why (logged; the client sees the connection close). */
export type EndTunnel = (reason: string) => void

/**
 * Splices the two sockets byte for byte until either side closes or `end` is called, then
 * calls `closed` once with the reason and the bytes relayed each way (101 head included).
 */
function splice (client: PendingUpgrade, app: Extract<Handshake, { kind: 'upgrade' }>, head: string, closed: (reason: string, bytesIn: number, bytesOut: number) => void): EndTunnel {
  const socket = client.socket as Socket
  const readBefore = socket.bytesRead - client.head.length
  const writtenBefore = socket.bytesWritten
  let ended = false
  const end: EndTunnel = (reason) => {
    if (ended) return
    ended = true
    socket.destroy()
    app.socket.destroy()
    closed(reason, socket.bytesRead - readBefore, socket.bytesWritten - writtenBefore)
  }
  app.socket.on('error', () => { end('app error') }).on('close', () => { end('app closed') })
  socket.on('close', () => { end('client closed') })
  socket.write(head)
  if (app.head.length > 0) socket.write(app.head)
  if (client.head.length > 0) app.socket.write(client.head)
  app.socket.setNoDelay(true)
  app.socket.pipe(socket).pipe(app.socket)
  return end
}

/** The access-log fields of a WebSocket session, as a request's line has them. */
function sessionFields (request: FastifyRequest): Record<string, unknown> {
  return {
    requestId: request.id,
    method: request.method,
    url: redactUrl(request.url),
    route: request.routeOptions.url ?? null,
    status: 101,
    person: request.identity?.email ?? null,
  }
}

/** The target of a proxied handshake. */
export interface UpgradeTarget {
  url: URL
  path: string
  headers: Record<string, string | string[]>
  timeoutMs: number
  publicUrl: string
  /** Called once the WebSocket is open, with a way to end it; returns what to call when it closes. */
  track?: (end: EndTunnel) => () => void
}

/**
 * Sends the client's handshake to the app. A switch of protocols is relayed and the two sockets
 * spliced byte for byte (frames, extensions and subprotocols are the app's business); any other
 * answer goes back as an ordinary response. Rejects when the app cannot be reached.
 */
export async function proxyUpgrade (request: FastifyRequest, reply: FastifyReply, target: UpgradeTarget): Promise<FastifyReply> {
  const client = pending.get(request.raw)!
  const handshake = await sendHandshake(target.url, target.path, target.headers, target.timeoutMs)
  if (handshake.kind === 'upgrade' && !isWebSocketUpgrade(handshake.response.headers.upgrade)) {
    handshake.socket.destroy()
    throw new BadGatewayError(`The app switched to a protocol other than WebSocket (request id ${request.id}).`)
  }
  const headers = appResponseHeaders(handshake.response.headers, target.url.origin, target.publicUrl, handshake.kind === 'upgrade')
  if (handshake.kind === 'response') {
    return await reply.code(handshake.response.statusCode ?? 502).headers(headers).send(handshake.response)
  }
  reply.hijack()
  const lines = [`HTTP/1.1 101 ${handshake.response.statusMessage ?? 'Switching Protocols'}`]
  for (const [name, value] of Object.entries(headers)) for (const item of [value].flat()) lines.push(`${name}: ${item}`)
  lines.push('x-request-id: ' + request.id)
  // A WebSocket never finishes a response, so the request log's line never comes: log its start and end here.
  request.log.info(sessionFields(request), 'websocket opened')
  let untrack = (): void => {}
  const end = splice(client, handshake, `${lines.join('\r\n')}\r\n\r\n`, (reason, bytesIn, bytesOut) => {
    untrack()
    request.log.info({ ...sessionFields(request), durationMs: Math.round(reply.elapsedTime), bytesIn, bytesOut, reason }, 'websocket closed')
  })
  untrack = target.track?.(end) ?? untrack
  return reply
}
