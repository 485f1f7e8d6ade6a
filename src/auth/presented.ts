import type { FastifyRequest } from 'fastify'

const BEARER = /^Bearer\s+(\S+)\s*$/i

/** One value a credential may sit in, trimmed, when `accepts` takes it. */
function accepted (value: string | undefined, accepts: (value: string) => boolean): string | undefined {
  const trimmed = value?.trim()
  return trimmed !== undefined && accepts(trimmed) ? trimmed : undefined
}

/**
 * The first credential of one kind a request presents, wherever Gemini clients put an API key:
 * `x-goog-api-key`, then `Authorization: Bearer`, then (with `query`) each `key` query parameter.
 * `accepts` tells the kind by its form; the rest are left to other resolvers. Called on every API
 * call by every resolver: no array or closure is made unless the request has a query.
 */
export function presentedCredential (request: FastifyRequest, accepts: (value: string) => boolean, query: boolean): string | null {
  const header = request.headers['x-goog-api-key']
  if (Array.isArray(header)) {
    for (const value of header) {
      const found = accepted(value, accepts)
      if (found !== undefined) return found
    }
  } else {
    const found = accepted(header, accepts)
    if (found !== undefined) return found
  }
  const authorization = request.headers.authorization
  const bearer = authorization === undefined ? undefined : accepted(BEARER.exec(authorization)?.[1], accepts)
  if (bearer !== undefined) return bearer
  const url = request.raw.url ?? ''
  const at = url.indexOf('?')
  if (!query || at === -1) return null
  for (const value of new URLSearchParams(url.slice(at + 1)).getAll('key')) {
    const found = accepted(value, accepts)
    if (found !== undefined) return found
  }
  return null
}
