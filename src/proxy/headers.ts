import type { IncomingHttpHeaders } from 'node:http'
import { carriesGatewayKey, isCredentialOrIdentityHeader } from './credential-headers.js'
import { isApiPath } from './target.js'

type HeaderValue = string | string[] | undefined
type Headers = Record<string, HeaderValue>

/** Hop-by-hop headers (RFC 9110 §7.6.1 and the usual non-standard ones): never forwarded either way. */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-authenticate', 'proxy-authorization', 'http2-settings',
])

/**
 * What the client sends that the upstream must not see: its credentials (the gateway injects
 * its own), the gateway's cookies, forwarding headers (the upstream is not told about the
 * client), what only concerns the hop to the gateway, a field mask (it could leave out the
 * usage the gateway meters an answer by, like the `fields` parameter: proxy/target.ts), and a
 * method override (Google serves a GET carrying `X-HTTP-Method-Override: POST` as a POST, which
 * the gateway's policy would have admitted as a GET; the usual other spellings go too).
 */
const CLIENT_ONLY = new Set([
  'host', 'authorization', 'x-goog-api-key', 'cookie', 'x-goog-user-project', 'x-goog-iam-authorization-token',
  'x-goog-iam-authority-selector', 'x-gemgate-assertion', 'forwarded', 'x-real-ip', 'expect', 'x-request-id',
  'x-goog-fieldmask', 'x-http-method-override', 'x-http-method', 'x-method-override',
])

/**
 * What the upstream answers that the client must not get: cookies (another origin's, now on
 * ours) and orders to clear ours, CORS and transport policy (the gateway's own apply), and its
 * request id (ours stands).
 */
const UPSTREAM_ONLY = new Set([
  'set-cookie', 'set-cookie2', 'clear-site-data', 'strict-transport-security', 'alt-svc', 'x-request-id',
])

/** Response headers that carry the URL of a resumable upload session. */
const UPLOAD_URL_HEADERS = new Set(['x-goog-upload-url', 'x-goog-upload-control-url'])

function first (value: HeaderValue): string | undefined {
  return Array.isArray(value) ? value.join(',') : value
}

const NONE: ReadonlySet<string> = new Set()

/** The header names a `Connection` header lists: hop-by-hop for this message only. */
export function connectionNamed (headers: Headers): ReadonlySet<string> {
  const listed = first(headers.connection)
  // The usual values name no other header.
  if (listed === undefined || listed === 'keep-alive' || listed === 'close') return NONE
  return new Set(listed.split(',').map((name) => name.trim().toLowerCase()).filter(Boolean))
}

/** What the gateway adds to every upstream request. */
export interface Injected {
  accessToken: string
  requestId: string
  quotaProject?: string
}

/**
 * The headers to send upstream: the client's minus hop-by-hop, credential, identity and
 * forwarding headers in any spelling and anything holding a gateway key, plus the gateway's own. The client's `Connection` is applied before anything is
 * injected, so naming `authorization` there cannot remove the gateway's token.
 */
export function upstreamRequestHeaders (incoming: IncomingHttpHeaders, injected: Injected): Record<string, string | string[]> {
  const named = connectionNamed(incoming)
  const headers: Record<string, string | string[]> = {}
  for (const name in incoming) {
    const value = incoming[name]
    if (value === undefined || HOP_BY_HOP.has(name) || CLIENT_ONLY.has(name) || named.has(name)) continue
    if (isCredentialOrIdentityHeader(name) || carriesGatewayKey(value)) continue
    headers[name] = value
  }
  headers.authorization = `Bearer ${injected.accessToken}`
  headers['x-request-id'] = injected.requestId
  if (injected.quotaProject !== undefined) headers['x-goog-user-project'] = injected.quotaProject
  return headers
}

/**
 * Points an upload session URL at the gateway, so the follow-up chunks come back through it
 * and are authenticated like any other call; null when it is not an API URL the gateway serves.
 */
export function gatewayUploadUrl (value: string, publicUrl: string): string | null {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return null
  }
  return isApiPath(url.pathname) ? `${publicUrl}${url.pathname}${url.search}` : null
}

// Merged Vary values per (gateway's, upstream's) pair: every answer asks, and the pairs are few
// (bounded all the same: an upstream's value is not ours to trust).
const mergedVary = new Map<string, Map<string, string>>()
const MAX_MERGED_VARY = 64

/** One Vary value from the gateway's and the upstream's, each field named once (`Origin` from both: once). */
export function mergeVary (own: string, upstream: string | string[]): string {
  if (Array.isArray(upstream)) return mergedVaryOf(own, upstream)
  let merged = mergedVary.get(own)
  if (merged === undefined) {
    if (mergedVary.size >= MAX_MERGED_VARY) return mergedVaryOf(own, upstream)
    mergedVary.set(own, merged = new Map())
  }
  let value = merged.get(upstream)
  if (value === undefined) {
    value = mergedVaryOf(own, upstream)
    if (merged.size < MAX_MERGED_VARY) merged.set(upstream, value)
  }
  return value
}

function mergedVaryOf (own: string, upstream: string | string[]): string {
  const fields = own.split(',').map((field) => field.trim()).filter((field) => field !== '')
  const named = new Set(fields.map((field) => field.toLowerCase()))
  for (const field of (Array.isArray(upstream) ? upstream.join(',') : upstream).split(',')) {
    const trimmed = field.trim()
    if (trimmed === '' || named.has(trimmed.toLowerCase())) continue
    named.add(trimmed.toLowerCase())
    fields.push(trimmed)
  }
  return fields.join(', ')
}

/** An upstream response header as the client gets it (a resumable upload's URL pointed at the gateway), or undefined when it is not forwarded. */
function forwarded (name: string, value: HeaderValue, named: ReadonlySet<string>, publicUrl: string): string | string[] | undefined {
  if (value === undefined || HOP_BY_HOP.has(name) || UPSTREAM_ONLY.has(name) || named.has(name) || name.startsWith('access-control-')) return undefined
  if (!UPLOAD_URL_HEADERS.has(name)) return value
  return gatewayUploadUrl(first(value) ?? '', publicUrl) ?? undefined
}

/** The upstream's response headers as the client gets them. */
export function clientResponseHeaders (upstream: Headers, publicUrl: string): Record<string, string | string[]> {
  const named = connectionNamed(upstream)
  const headers: Record<string, string | string[]> = {}
  for (const name in upstream) {
    const value = forwarded(name, upstream[name], named, publicUrl)
    if (value !== undefined) headers[name] = value
  }
  return headers
}

/**
 * The client's response headers for `writeHead`, as a flat list of names and values: the
 * upstream's as the client gets them, under the gateway's own (`own`, a reply's: its request id,
 * CORS, x-ratelimit-*, late headers), one Vary naming each field once. A list rather than an
 * object: every answer carries a dozen or more, and pushing them costs less than adding each
 * as a property (Node writes either the same way).
 */
export function answerHeaders (upstream: Headers, own: Record<string, string | number | string[] | undefined>, publicUrl: string): Array<string | string[]> {
  const named = connectionNamed(upstream)
  const list: Array<string | string[]> = []
  let vary: string | string[] | undefined
  for (const name in upstream) {
    if (own[name] !== undefined) {
      if (name === 'vary') vary = forwarded(name, upstream[name], named, publicUrl)
      continue
    }
    const value = forwarded(name, upstream[name], named, publicUrl)
    if (value !== undefined) list.push(name, value)
  }
  for (const name in own) {
    const value = own[name]
    if (value === undefined) continue
    if (name === 'vary' && vary !== undefined) list.push(name, mergeVary(String(value), vary))
    else list.push(name, typeof value === 'number' ? String(value) : value)
  }
  return list
}
