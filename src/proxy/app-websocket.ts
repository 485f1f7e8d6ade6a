import { ServerResponse, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
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

function sendHandshake (target: URL, path: string, headers: Record<string, string | string[]>, timeoutMs: number): Promise<Handshake> {
  const options: RequestOptions = {
    host: target.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: target.port === '' ? undefined : Number(target.port),
    path,
    method: 'GET',
    headers,
  }
  return new Promise((resolve, reject) => {
    const upstream = (target.protocol === 'https:' ? httpsRequest : httpRequest)(options)
    const timer = setTimeout(() => {
      upstream.destroy(Object.assign(new Error('the app did not answer the WebSocket handshake in time'), { code: 'ETIMEDOUT' }))
    }, timeoutMs)
    upstream.once('upgrade', (response, socket, head) => { clearTimeout(timer); resolve({ kind: 'upgrade', response, socket, head }) })
    upstream.once('response', (response) => { clearTimeout(timer); resolve({ kind: 'response', response }) })
    upstream.once('error', (error) => { clearTimeout(timer); reject(error) })
    upstream.end()
  })
}

function splice (client: PendingUpgrade, app: Extract<Handshake, { kind: 'upgrade' }>, head: string): void {
  const { socket } = client
  const close = (): void => { socket.destroy(); app.socket.destroy() }
  app.socket.on('error', close).on('close', close)
  socket.on('close', close)
  socket.write(head)
  if (app.head.length > 0) socket.write(app.head)
  if (client.head.length > 0) app.socket.write(client.head)
  app.socket.setNoDelay(true)
  app.socket.pipe(socket).pipe(app.socket)
}

/** The target of a proxied handshake. */
export interface UpgradeTarget {
  url: URL
  path: string
  headers: Record<string, string | string[]>
  timeoutMs: number
  publicUrl: string
}

/**
 * Sends the client's handshake to the app. A switch of protocols is relayed and the two sockets
 * spliced byte for byte (frames, extensions and subprotocols are the app's business); any other
 * answer goes back as an ordinary response. Rejects when the app cannot be reached.
 */
export async function proxyUpgrade (request: FastifyRequest, reply: FastifyReply, target: UpgradeTarget): Promise<FastifyReply> {
  const client = pending.get(request.raw)!
  const handshake = await sendHandshake(target.url, target.path, target.headers, target.timeoutMs)
  const headers = appResponseHeaders(handshake.response.headers, target.url.origin, target.publicUrl, handshake.kind === 'upgrade')
  if (handshake.kind === 'response') {
    return await reply.code(handshake.response.statusCode ?? 502).headers(headers).send(handshake.response)
  }
  reply.hijack()
  const lines = [`HTTP/1.1 101 ${handshake.response.statusMessage ?? 'Switching Protocols'}`]
  for (const [name, value] of Object.entries(headers)) for (const item of [value].flat()) lines.push(`${name}: ${item}`)
  lines.push('x-request-id: ' + request.id)
  splice(client, handshake, `${lines.join('\r\n')}\r\n\r\n`)
  return reply
}
