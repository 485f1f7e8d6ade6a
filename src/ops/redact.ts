/**
 * Query parameters whose values are credentials: gateway keys (`key`), OAuth tokens Google's
 * APIs accept in the query (`access_token`, `oauth_token`), and the sign-in's `code`/`state`.
 */
export const SECRET_QUERY_PARAMS: ReadonlySet<string> = new Set([
  'key', 'api_key', 'apikey', 'access_token', 'oauth_token', 'id_token', 'refresh_token', 'token',
  'code', 'state', 'client_secret', 'assertion',
])

/** A gateway key wherever it sits (the path, any parameter), with `_` written as is or percent-encoded. */
const GATEWAY_KEY = /gk(?:_|%5f)[\w%-]*/gi
/** `name=value` after `?` or `&`; the value stops at the next parameter, fragment, quote or space (so text around a URL survives). */
const PARAMETER = /([?&])([^=&#'"\s]*)=([^&#'"\s]*)/g
const REDACTED = '[redacted]'
/** What either pattern above needs to match at all: most API paths (no query, no key) are returned as they are without a replace. */
const MAY_HOLD_SECRET = /[?&]|gk/i

function decodedName (name: string): string {
  try {
    return decodeURIComponent(name.replaceAll('+', ' ')).toLowerCase()
  } catch {
    return name.toLowerCase()
  }
}

/**
 * Hides every credential a URL (or a message quoting one) may carry: the values of
 * {@link SECRET_QUERY_PARAMS} and any gateway key, in the path or the query, encoded or not.
 * Works on text that is not a valid URL (a malformed percent-escape), which is when Fastify quotes
 * it in an error. The one redaction for URLs: log lines and error bodies all go through it.
 */
export function redactUrl (url: string): string {
  if (!MAY_HOLD_SECRET.test(url)) return url
  // Names are compared decoded, as the query parser reads them: `?%6Bey=` is `key` too.
  return url.replace(PARAMETER, (parameter, separator: string, name: string) =>
    SECRET_QUERY_PARAMS.has(decodedName(name)) ? `${separator}${name}=${REDACTED}` : parameter)
    .replace(GATEWAY_KEY, REDACTED)
}
