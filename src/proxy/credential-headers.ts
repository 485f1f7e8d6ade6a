import { KEY_PREFIX } from '../auth/key-store.js'

/**
 * Headers that carry a credential for the gateway or for Google, compared in canonical form
 * (lower case, every non-alphanumeric as `-`): servers that fold `X_Api_Key` or `x.api.key`
 * onto `X-Api-Key` exist, so every spelling counts.
 */
const CREDENTIAL_NAMES = new Set([
  'authorization', 'proxy-authorization', 'x-goog-api-key', 'x-api-key', 'api-key', 'apikey', 'x-apikey',
  'x-goog-iam-authorization-token', 'x-goog-iam-authority-selector', 'x-access-token', 'x-auth-token',
])

/**
 * Headers through which a client could claim an identity or a client address: the gateway's
 * own and those of common auth proxies (oauth2-proxy, Pomerium, Google IAP, AWS ALB,
 * Cloudflare Access, Azure App Service, Grafana's auth proxy, Kong, Vouch), some of which
 * frameworks trust as is.
 */
const IDENTITY_PREFIXES = [
  'x-forwarded-', 'x-gemgate-', 'x-auth-request-', 'x-pomerium-', 'remote-', 'x-remote-', 'x-webauth-',
  'x-goog-authenticated-user-', 'x-goog-iap-', 'x-amzn-oidc-', 'cf-access-', 'x-ms-client-principal', 'x-authenticated-',
  'x-user', 'x-email', 'x-vouch-', 'x-consumer-', 'x-credential-',
]
const IDENTITY_NAMES = new Set(['forwarded', 'x-real-ip', 'x-client-ip', 'gap-auth', 'gap-signature'])

/** A token in the gateway keys' namespace anywhere in a value (`Bearer gk_…`, a list, a custom header), even a malformed one. */
const GATEWAY_KEY_ANYWHERE = /(?:^|[^A-Za-z0-9_-])gk_[A-Za-z0-9_-]/
/** Distinct header names whose verdict is remembered; beyond it (a client inventing names), it is recomputed. */
const MAX_REMEMBERED_NAMES = 2_000

/** A header name in the form servers compare: lower case, every non-alphanumeric as `-`. */
export function canonicalHeaderName (name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '-')
}

function remembered (verdicts: Map<string, boolean>, name: string, decide: (canonical: string) => boolean): boolean {
  let verdict = verdicts.get(name)
  if (verdict === undefined) {
    verdict = decide(canonicalHeaderName(name))
    if (verdicts.size < MAX_REMEMBERED_NAMES) verdicts.set(name, verdict)
  }
  return verdict
}

const identityVerdicts = new Map<string, boolean>()
const credentialVerdicts = new Map<string, boolean>()

/** True for a header name, in any spelling, that claims who the person is or where they connect from. */
export function isIdentityHeader (name: string): boolean {
  return remembered(identityVerdicts, name, (text) => IDENTITY_NAMES.has(text) || IDENTITY_PREFIXES.some((prefix) => text.startsWith(prefix)))
}

/** True for a header name, in any spelling, that carries a credential or identity: never for the upstream. */
export function isCredentialOrIdentityHeader (name: string): boolean {
  return remembered(credentialVerdicts, name, (text) => CREDENTIAL_NAMES.has(text)) || isIdentityHeader(name)
}

/** True when a header value holds a gateway key anywhere (a list, a scheme, a custom header). */
export function carriesGatewayKey (value: string | string[]): boolean {
  if (typeof value === 'string') return value.includes(KEY_PREFIX) && GATEWAY_KEY_ANYWHERE.test(value)
  return value.some((item) => carriesGatewayKey(item))
}
