import { carriesGatewayKey } from '../proxy/credential-headers.js'
import { API_PREFIXES } from '../proxy/target.js'

/** Exact paths the gateway serves itself; never the app's, whatever the method. */
const GATEWAY_PATHS = new Set(['/healthz', '/readyz', '/metrics', '/.well-known/jwks.json', '/auth', ...API_PREFIXES.map((prefix) => prefix.slice(0, -1))])
/** Path prefixes the gateway serves itself. */
const GATEWAY_PREFIXES = ['/auth/', ...API_PREFIXES]

/** Characters whose percent-encoding would change a path's shape once decoded: `/ \ . % ; ? #`. */
const SHAPE_CHANGING_ESCAPE = /%(2f|5c|2e|25|3b|3f|23)/i
/** Anything but printable ASCII, or a character some servers treat as a separator or parameter. */
const AMBIGUOUS_CHARACTER = /[^\x21-\x7e]|[\\;#]/

/** The path part of a raw request target (no query). */
export function pathOf (rawUrl: string): string {
  const queryAt = rawUrl.indexOf('?')
  return queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt)
}

function decodeOnce (path: string): string | null {
  try {
    return decodeURIComponent(path)
  } catch {
    return null
  }
}

/**
 * The path in the one form every server agrees on, or null when it has none: decoded once, and
 * refused when it is not origin-form or holds anything a server might read differently (dot or
 * empty segments, backslashes, `;` parameters, encoded slashes, dots or percent signs, control
 * or non-ASCII characters). Only the path is looked at: never the query, a fragment or a header.
 */
export function normalisedPath (rawPath: string): string | null {
  if (!rawPath.startsWith('/') || AMBIGUOUS_CHARACTER.test(rawPath) || SHAPE_CHANGING_ESCAPE.test(rawPath)) return null
  const decoded = decodeOnce(rawPath)
  if (decoded === null || AMBIGUOUS_CHARACTER.test(decoded)) return null
  const segments = decoded.split('/').slice(1)
  if (segments.some((segment) => segment === '.' || segment === '..')) return null
  if (segments.slice(0, -1).includes('')) return null
  return decoded
}

/**
 * True when APP_PUBLIC_PATHS lets this path through without sign-in. A prefix ending in `/`
 * covers everything under it; any other prefix covers that exact path and what lies under it
 * as a directory (`/favicon.ico`, `/public` → `/public/x` but not `/publicity`). A path without
 * a normalised form is never public.
 */
export function isPublicPath (rawPath: string, publicPaths: readonly string[]): boolean {
  const path = normalisedPath(rawPath)
  if (path === null) return false
  return publicPaths.some((prefix) => prefix.endsWith('/')
    ? path.startsWith(prefix)
    : path === prefix || path.startsWith(`${prefix}/`))
}

/** True for paths in the gateway's own namespace (/auth/*, the API prefixes, probes, JWKS), in any encoding. */
export function isGatewayPath (rawPath: string): boolean {
  const paths = [rawPath, decodeOnce(rawPath) ?? rawPath]
  return paths.some((path) => GATEWAY_PATHS.has(path) || GATEWAY_PREFIXES.some((prefix) => path.startsWith(prefix)))
}

function decodedParameter (pair: string): string {
  return decodeOnce(pair.replace(/\+/g, ' ')) ?? pair
}

/**
 * The request target without the query parameters that hold a gateway key (`?key=gk_…`, in any
 * parameter and encoding): the key is the gateway's credential, never the app's. Everything
 * else, the path included, stays exactly as the client sent it.
 */
export function withoutGatewayKeys (rawUrl: string): string {
  const queryAt = rawUrl.indexOf('?')
  if (queryAt === -1) return rawUrl
  const pairs = rawUrl.slice(queryAt + 1).split('&')
  const kept = pairs.filter((pair) => !carriesGatewayKey(decodedParameter(pair)))
  if (kept.length === pairs.length) return rawUrl
  return kept.length === 0 ? pathOf(rawUrl) : `${pathOf(rawUrl)}?${kept.join('&')}`
}
