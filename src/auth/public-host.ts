import type { FastifyRequest } from 'fastify'

/**
 * Marks a sign-in already sent to PUBLIC_URL once. A proxy that rewrites Host (nginx's default
 * `proxy_pass` does) would otherwise send it round in circles; with the mark it goes on.
 */
export const HOST_REDIRECTED_PARAM = 'from_host'

/**
 * Where to send a sign-in that started on another host than PUBLIC_URL's (127.0.0.1 for
 * localhost, a bare IP for the DNS name), or undefined to go on. The login cookie is set per
 * host and the provider returns to PUBLIC_URL, so a sign-in started elsewhere can never finish.
 */
export function publicHostRedirect (request: FastifyRequest, publicUrl: string): string | undefined {
  const query = request.query as Record<string, string | undefined>
  const target = new URL(`${publicUrl}/auth/login`)
  if (request.host === target.host || query[HOST_REDIRECTED_PARAM] !== undefined) return undefined
  for (const [name, value] of Object.entries(query)) if (value !== undefined) target.searchParams.set(name, value)
  target.searchParams.set(HOST_REDIRECTED_PARAM, '1')
  return target.href
}
