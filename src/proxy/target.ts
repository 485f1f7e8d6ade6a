import { BadRequestError } from '../errors.js'

/** The path prefixes forwarded to the Gemini API; nothing else ever reaches the upstream. */
export const API_PREFIXES = ['/v1beta/', '/v1/', '/v1alpha/', '/upload/'] as const

/**
 * Query parameters never forwarded (Google reads each also with a `$` before it): those that
 * carry a credential (`key`, `access_token`); a field mask (`fields`), which could leave out of an
 * answer the usage the gateway meters it by (without one the answer is the whole one, a superset
 * of the masked); and Google's overrides of what the gateway decides by or sets itself: the
 * method (`$httpMethod`: the policy would admit a GET that Google serves as a POST), the content
 * type (`$ct`: a body the policy reads as JSON that Google reads as protobuf) and the quota
 * project (`userProject`, X-Goog-User-Project's twin). Names are compared in lower case.
 */
const DROPPED_PARAMS = new Set(['key', 'access_token', 'oauth_token', 'fields', 'httpmethod', 'ct', 'userproject'])

/**
 * Google's own ephemeral tokens (`auth_tokens`, on any version): one would open a Live session
 * straight to Google, past the gateway's policy and audit. The gateway mints its own at
 * POST /v1alpha/auth_tokens (src/ephemeral), a route of its own that never reaches here.
 */
const GOOGLE_EPHEMERAL_TOKENS = /^\/(?:upload\/)?[^/]+\/auth_tokens(?:$|[/:;])/i

/**
 * Characters that may not appear percent-encoded in a path: they would change its shape once
 * decoded (`:` separates a resource from its method: `models/x%3AgenerateContent` would be a
 * model to the gateway and a generation to an upstream that decodes first).
 */
const FORBIDDEN_ENCODED = new Set(['.', '/', '\\', '%', '?', '#', ';', ':'])

/** Where a request goes upstream: a path confined to the API prefixes, and the query minus credentials. */
export interface UpstreamTarget {
  path: string
  search: string
}

function refuse (why: string): never {
  throw new BadRequestError(`Request path refused: ${why}.`)
}

/** True for a path under one of the API prefixes, with something after the prefix. */
export function isApiPath (path: string): boolean {
  return API_PREFIXES.some((prefix) => path.startsWith(prefix) && path.length > prefix.length)
}

const HEX = /^[0-9a-fA-F]{2}$/

/** Printable ASCII without a backslash, a fragment or a percent-escape: most paths, checked in one regex pass. */
const PLAIN_PATH = /^[\x21\x22\x24\x26-\x5b\x5d-\x7e]*$/

/** One pass over the path's characters: printable ASCII only, and every escape well formed and harmless once decoded. */
function checkCharacters (path: string): void {
  if (PLAIN_PATH.test(path)) return
  for (let index = 0; index < path.length; index++) {
    const code = path.charCodeAt(index)
    // Printable ASCII only: no spaces or control characters; no backslashes or fragments.
    if (code < 0x21 || code > 0x7e || code === 0x5c || code === 0x23) refuse('it contains a backslash, fragment or non-printable character')
    if (code !== 0x25) continue
    const hex = path.slice(index + 1, index + 3)
    if (!HEX.test(hex)) refuse('it contains a malformed percent-escape')
    const decoded = String.fromCharCode(parseInt(hex, 16))
    if (FORBIDDEN_ENCODED.has(decoded) || decoded < ' ' || decoded > '~') refuse(`it encodes ${JSON.stringify(decoded)}`)
    index += 2
  }
}

/** A segment that is `.` or `..` (a path starting with `/`; checked after its characters). */
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/

function checkPath (path: string): void {
  if (!path.startsWith('/')) refuse('only origin-form request targets (starting with /) are accepted')
  checkCharacters(path)
  if (DOT_SEGMENT.test(path)) refuse('it contains a dot segment')
  // An empty segment anywhere but last (a trailing slash) is two slashes in a row.
  if (path.includes('//')) refuse('it contains an empty segment')
  if (!isApiPath(path)) refuse(`it is not under ${API_PREFIXES.join(', ')}`)
  if (GOOGLE_EPHEMERAL_TOKENS.test(path)) {
    throw new BadRequestError('Ephemeral tokens are the gateway\'s own: mint one with POST /v1alpha/auth_tokens (a token from Google would bypass the gateway).')
  }
}

function isDroppedParam (pair: string): boolean {
  const name = pair.split('=', 1)[0]!.replace(/\+/g, ' ')
  let decoded: string
  try {
    decoded = decodeURIComponent(name)
  } catch {
    return refuse('the query string contains a malformed percent-escape')
  }
  return DROPPED_PARAMS.has(decoded.trim().replace(/^\$/, '').toLowerCase())
}

/**
 * Validates the raw request target and gives what to send upstream, or throws BadRequestError (400)
 * before anything is sent. The path is never rewritten: an ambiguous one (dot segments, encoded
 * dots or slashes, backslashes, absolute form) is refused rather than normalised, so the gateway
 * and the upstream cannot disagree about what it means.
 */
export function upstreamTarget (rawUrl: string): UpstreamTarget {
  const queryAt = rawUrl.indexOf('?')
  const path = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt)
  checkPath(path)
  if (queryAt === -1) return { path, search: '' }
  const query = rawUrl.slice(queryAt + 1)
  const kept = query.split('&').filter((pair) => pair !== '' && !isDroppedParam(pair))
  return { path, search: kept.length === 0 ? '' : `?${kept.join('&')}` }
}
