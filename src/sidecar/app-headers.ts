import type { IncomingHttpHeaders } from 'node:http'
import { isGatewayCookie } from '../auth/cookies.js'
import { canonicalHeaderName, carriesGatewayKey, isIdentityHeader } from '../proxy/credential-headers.js'

type HeaderValue = string | string[] | undefined
type OutgoingHeaders = Record<string, string | string[]>

/** Hop-by-hop headers, plus what only concerns the hop to the gateway (the app gets its own Host). */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-authenticate', 'proxy-authorization', 'http2-settings', 'expect', 'host',
])

/**
 * Besides every identity header (see proxy/credential-headers), what the app must not take from
 * the client: URLs some frameworks rewrite the path from (X-Original-URL and friends), and the
 * request id (the gateway's stands).
 */
const APP_SPOOFABLE_PREFIXES = ['x-original-']
const APP_SPOOFABLE = new Set(['x-rewrite-url', 'x-request-id'])

/** Headers the app's answer may not carry: the gateway's request id stands. */
const APP_RESPONSE_ONLY = new Set(['x-request-id'])
/**
 * What the app may clear with Clear-Site-Data: the origin's cache, storage and execution
 * contexts, which are its own. Never `"cookies"` (nor `"*"`): that would wipe the gateway's
 * session cookie, and every cookie of the registrable domain with it.
 */
const APP_CLEARABLE = new Set(['"cache"', '"storage"', '"executionContexts"'])

/** Who the app is told the person is; absent on a public path requested signed out. */
export interface AppIdentity {
  sub: string
  email: string
  name: string
  assertion: string
}

/** What the gateway adds to every request to the app. */
export interface AppRequestContext {
  identity: AppIdentity | null
  requestId: string
  clientIp: string
  publicUrl: string
  /** A WebSocket handshake: `Upgrade: websocket`, `Connection: Upgrade`, no body framing. */
  upgrade?: boolean
}

/** True for a header name that looks like one only the gateway may set, in any spelling. */
export function isSpoofableHeader (name: string): boolean {
  if (isIdentityHeader(name)) return true
  const text = canonicalHeaderName(name)
  return APP_SPOOFABLE.has(text) || APP_SPOOFABLE_PREFIXES.some((prefix) => text.startsWith(prefix))
}

function decodeOnce (text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/** True for a cookie name the gateway owns or that imitates one (`__Secure-gemgate…`, `%67emgate`). */
export function isGatewayCookieName (name: string): boolean {
  return [name, decodeOnce(name)].map((text) => text.trim())
    .some((text) => isGatewayCookie(text) || /^(__host-|__secure-)?gemgate/i.test(text))
}

function connectionNamed (headers: Record<string, HeaderValue>): Set<string> {
  const value = headers.connection
  const text = Array.isArray(value) ? value.join(',') : value ?? ''
  return new Set(text.split(',').map((name) => name.trim().toLowerCase()).filter(Boolean))
}

/** The Cookie header without the gateway's cookies; undefined when nothing else is left. */
export function withoutGatewayCookies (header: string | string[]): string | undefined {
  const pairs = (Array.isArray(header) ? header.join(';') : header).split(';')
  const kept = pairs.map((pair) => pair.trim())
    .filter((pair) => pair !== '' && !isGatewayCookieName(pair.split('=', 1)[0]!))
  return kept.length === 0 ? undefined : kept.join('; ')
}

/** Google's API-key header in any spelling: it is the gateway's to read, never the app's. */
function isGoogleKeyHeader (name: string): boolean {
  return name === 'x-goog-api-key' || canonicalHeaderName(name) === 'x-goog-api-key'
}

/** Printable text as a header value: control characters dropped, UTF-8 bytes sent as they are. */
function headerText (text: string): string {
  return Buffer.from(text.replace(/[\u0000-\u001f\u007f]/g, ''), 'utf8').toString('latin1')
}

/**
 * The headers the app gets: the client's, minus hop-by-hop headers, anything resembling an
 * identity or forwarding header, the gateway's cookies and gateway keys; then the gateway's own
 * forwarding and identity headers. The client's `Connection` is applied before anything is
 * added, so naming a header there cannot remove one of the gateway's.
 */
export function appRequestHeaders (incoming: IncomingHttpHeaders, context: AppRequestContext): OutgoingHeaders {
  const named = connectionNamed(incoming)
  const headers: OutgoingHeaders = {}
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name) || isSpoofableHeader(name)) continue
    if (name === 'cookie') {
      const cookies = withoutGatewayCookies(value)
      if (cookies !== undefined) headers.cookie = cookies
      continue
    }
    if (isGoogleKeyHeader(name) || carriesGatewayKey(value)) continue
    headers[name] = value
  }
  const publicUrl = new URL(context.publicUrl)
  headers['x-forwarded-for'] = context.clientIp
  headers['x-forwarded-proto'] = publicUrl.protocol.slice(0, -1)
  headers['x-forwarded-host'] = publicUrl.host
  headers['x-request-id'] = context.requestId
  if (context.identity !== null) {
    headers['x-forwarded-user'] = headerText(context.identity.sub)
    headers['x-forwarded-email'] = headerText(context.identity.email)
    headers['x-forwarded-name'] = headerText(context.identity.name)
    headers['x-gemgate-assertion'] = context.identity.assertion
  }
  if (context.upgrade === true) {
    // A handshake has no body: no framing header may reach the app on it.
    delete headers['content-length']
    headers.connection = 'Upgrade'
    headers.upgrade = 'websocket'
  }
  return headers
}

/** True for a Set-Cookie line that would set (or shadow) a gateway cookie, or a nameless one. */
export function setsGatewayCookie (line: string): boolean {
  const pair = line.split(';', 1)[0]!
  const at = pair.indexOf('=')
  // RFC 6265bis: without `=` the whole pair is the value of a nameless cookie, which browsers
  // send back as bare `value`, i.e. it can pose as any `name=value`.
  const name = at === -1 ? '' : pair.slice(0, at).trim()
  return name === '' || isGatewayCookieName(name)
}

/**
 * The app's response headers as the client gets them: hop-by-hop headers dropped (for a 101,
 * `Connection` and `Upgrade` kept), no Set-Cookie that touches a gateway cookie, Clear-Site-Data
 * without `"cookies"`, and a
 * Location pointing at the app's own origin turned into one on PUBLIC_URL.
 */
export function appResponseHeaders (upstream: Record<string, HeaderValue>, appOrigin: string, publicUrl: string, upgrade = false): OutgoingHeaders {
  const named = connectionNamed(upstream)
  const headers: OutgoingHeaders = {}
  for (const [name, value] of Object.entries(upstream)) {
    if (value === undefined || APP_RESPONSE_ONLY.has(name)) continue
    if ((HOP_BY_HOP.has(name) || named.has(name)) && !(upgrade && (name === 'connection' || name === 'upgrade'))) continue
    if (name === 'clear-site-data') {
      const kept = [value].flat().join(',').split(',').map((directive) => directive.trim()).filter((directive) => APP_CLEARABLE.has(directive))
      if (kept.length > 0) headers[name] = kept.join(', ')
      continue
    }
    if (name === 'set-cookie') {
      const kept = [value].flat().filter((line) => !setsGatewayCookie(line))
      if (kept.length > 0) headers[name] = kept
      continue
    }
    if (name === 'location' && typeof value === 'string' && (value === appOrigin || value.startsWith(`${appOrigin}/`))) {
      headers[name] = publicUrl + value.slice(appOrigin.length)
      continue
    }
    headers[name] = value
  }
  return headers
}
