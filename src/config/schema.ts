import { z } from 'zod'
import { DEFAULT_MODEL } from './models.js'
import { policySchema, pricesSchema } from './policy.js'
import {
  EXAMPLE_COOKIE_SECRET, EXAMPLE_ENCRYPTION_KEY, MAKE_SECRET, isExampleSecret, isGuessableKey, isGuessableSecret, isShellCommand,
} from './secrets.js'

/** What every leaf setting carries besides its type: how to spell it and a good value. */
export interface SettingMeta {
  /** The environment variable that sets it. */
  env: string
  /** A good value, quoted in error messages and the docs. */
  example: string
  /** One line for the configuration reference. */
  description: string
  /** Read from `<env>_FILE` too, and never printed. */
  secret?: boolean
  /** A command whose output is a good value: quoted instead of the example where one is asked for. */
  generate?: string
}

const settings = z.registry<SettingMeta>()

function setting<T extends z.ZodType>(schema: T, meta: SettingMeta): T {
  settings.add(schema, meta)
  return schema
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1'])

/** True for 127.0.0.0/8, ::1 and localhost: the only hosts where plain http is allowed. */
export function isLoopbackHost (hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname) || /^127(\.\d{1,3}){3}$/.test(hostname)
}

function splitList (value: unknown): unknown {
  if (typeof value !== 'string') return value
  return value.split(',').map((item) => item.trim()).filter((item) => item !== '')
}

function toNumber (value: unknown): unknown {
  if (typeof value !== 'string' || value.trim() === '') return value
  const number = Number(value)
  return Number.isNaN(number) ? value : number
}

function integer (min: number, max: number) {
  return z.preprocess(toNumber, z.number({ error: 'must be a whole number' }).int('must be a whole number').min(min, `must be at least ${min}`).max(max, `must be at most ${max}`))
}

function httpsUrl () {
  return z.string({ error: 'must be a URL' }).trim().pipe(z.url({ error: 'must be an absolute URL', protocol: /^https?$/ }))
    // Runs even when z.url failed: an unparseable or non-http(s) value is already reported.
    .refine((value) => {
      if (!URL.canParse(value)) return true
      const url = new URL(value)
      return url.protocol !== 'http:' || isLoopbackHost(url.hostname)
    }, 'must use https:// (http:// is accepted only on a loopback host)')
    .transform((value) => value.replace(/\/+$/, ''))
}

function stringList () {
  return z.preprocess(splitList, z.array(z.string({ error: 'must be a list of strings' }).trim().min(1), { error: 'must be a comma-separated list' }))
}

/** A list of exact web origins (`scheme://host[:port]`, no path), as browsers send in `Origin`. */
function originList () {
  return z.preprocess(splitList, z.array(z.string().trim().refine((value) => URL.canParse(value) && new URL(value).origin === value,
    'each entry must be an origin: scheme://host[:port], no path or trailing slash'), { error: 'must be a comma-separated list of origins' }))
}

function hostPortList () {
  return z.preprocess(splitList, z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, 'each entry must be host:port')).min(1, 'must list at least one host:port'))
}

/** What is wrong with one secret value before its own format is checked, if anything. */
function commonSecretProblem (value: string): string | undefined {
  if (isShellCommand(value)) return 'is a shell command written as a value: .env and YAML files run no shell, so paste the command\'s output instead'
  if (isExampleSecret(value)) return 'is the example from the docs, which anyone can read'
  return undefined
}

/** A refinement that reports the first problem `check` finds. */
function problemCheck (check: (value: string) => string | undefined) {
  return (value: string, ctx: z.RefinementCtx): void => {
    const message = check(value)
    if (message !== undefined) ctx.addIssue({ code: 'custom', message })
  }
}

const cookieSecrets = z.preprocess(splitList, z.array(z.string().superRefine(problemCheck((secret) => {
  const common = commonSecretProblem(secret)
  if (common !== undefined) return common
  if (Buffer.byteLength(secret) < 32) return 'each secret must be at least 32 bytes long'
  return isGuessableSecret(secret) ? 'is guessable (repeated characters or words), not random' : undefined
}))).min(1, 'must hold at least one secret'))

const encryptionKeys = z.preprocess(splitList, z.array(z.string().superRefine(problemCheck((key) => {
  const common = commonSecretProblem(key)
  if (common !== undefined) return common
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(key) || Buffer.from(key, 'base64').length !== 32) return 'each key must be 32 random bytes in base64 (44 characters)'
  return isGuessableKey(Buffer.from(key, 'base64')) ? 'is guessable (a few byte values repeated), not random bytes' : undefined
}))).min(1, 'must hold at least one key'))

/** A domain people's emails end in: a hostname with a dot, without `@` or a scheme. */
const EMAIL_DOMAIN = /^(\*|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+)$/i
/** One `@` between a local part and a dotted domain: enough to catch a name or a domain pasted here. */
const EMAIL_ADDRESS = /^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$/

function emailDomainList () {
  return z.preprocess(splitList, z.array(z.string().regex(EMAIL_DOMAIN, 'each entry must be a domain such as example.com (no @, no scheme), or *'),
    { error: 'must be a comma-separated list' }))
}

function emailList () {
  return z.preprocess(splitList, z.array(z.string().regex(EMAIL_ADDRESS, 'each entry must be an email address such as alice@example.com'),
    { error: 'must be a comma-separated list' }))
}

/** PUBLIC_URL: the gateway's routes sit at the root, so the URL is an origin and nothing more. */
function originUrl () {
  return httpsUrl().refine((value) => {
    if (!URL.canParse(value)) return true
    const url = new URL(value)
    return url.pathname === '/' && url.search === '' && url.hash === ''
  }, 'must be an origin with no path, query or fragment (the gateway\'s routes sit at the root)')
}

const trustProxy = z.preprocess((value) => {
  if (typeof value !== 'string') return value
  const text = value.trim().toLowerCase()
  if (text === 'true') return true
  if (text === 'false' || text === '') return false
  if (/^\d+$/.test(text)) return Number(text)
  return splitList(value)
}, z.union([z.boolean(), z.number().int().min(0), z.array(z.string().regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?$/, 'each entry must be an IP address or CIDR'))],
  { error: 'must be true, false, a hop count or a comma-separated CIDR list' }))

const timeZone = z.string().trim().refine((zone) => {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone }).format(0)
    return true
  } catch {
    return false
  }
}, 'must be an IANA time zone')
const booleanFlag = z.preprocess((value) => {
  if (typeof value !== 'string') return value
  const text = value.trim().toLowerCase()
  return text === 'true' ? true : text === 'false' ? false : value
}, z.boolean({ error: 'must be true or false' }))

const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: 'must be one of fatal, error, warn, info, debug, trace, silent' })

/** A nested section of settings; absent in the YAML file means all its defaults. */
function group<T extends z.core.$ZodLooseShape> (shape: T) {
  return z.preprocess((value) => value ?? {}, z.strictObject(shape))
}

const GOOGLE_ISSUER = 'https://accounts.google.com'

/** A collector's base URL: plain http is usual inside a cluster, so it is allowed anywhere. */
function collectorUrl () {
  return z.string({ error: 'must be a URL' }).trim().pipe(z.url({ error: 'must be an absolute http:// or https:// URL', protocol: /^https?$/ }))
    .transform((value) => value.replace(/\/+$/, ''))
}

/** The one schema: validates the merged settings and gives the `Config` type. */
export const configSchema = z.strictObject({
  port: setting(integer(0, 65535).default(8080), { env: 'PORT', example: '8080', description: 'TCP port to listen on.' }),
  host: setting(z.string().min(1).default('0.0.0.0'), { env: 'HOST', example: '0.0.0.0', description: 'Address to listen on.' }),
  metricsPort: setting(integer(1, 65535).optional(), { env: 'METRICS_PORT', example: '9090', description: 'Serve /metrics and /readyz on this port only (on HOST), not on the public one; unset means both stay on PORT. /healthz answers on both.' }),
  publicUrl: setting(originUrl(), { env: 'PUBLIC_URL', example: 'https://gemgate.example.com', description: 'External base URL; the redirect URI is PUBLIC_URL + /auth/callback.' }),
  logLevel: setting(logLevel.default('info'), { env: 'LOG_LEVEL', example: 'info', description: 'pino log level.' }),
  trustProxy: setting(trustProxy.default(false), { env: 'TRUST_PROXY', example: '10.0.0.0/8', description: 'Honour X-Forwarded-* from these proxies: true, false, a hop count or a CIDR list.' }),
  corsOrigins: setting(stringList().default([]), { env: 'CORS_ORIGINS', example: 'https://app.example.com', description: 'Exact origins allowed to call the API with credentials.' }),
  shutdownDrainSeconds: setting(integer(1, 3600).default(30), { env: 'SHUTDOWN_DRAIN_SECONDS', example: '30', description: 'On SIGTERM, how long in-flight requests (streams included) may take to finish.' }),
  defaultModel: setting(z.string().trim().regex(/^[\w.-]{1,80}$/, 'must be a model id like gemini-3.8-flash').default(DEFAULT_MODEL),
    { env: 'DEFAULT_MODEL', example: DEFAULT_MODEL, description: 'The model the status page\'s examples name (and the demo\'s chat uses).' }),
  oidc: group({
    issuer: setting(httpsUrl().default(GOOGLE_ISSUER), { env: 'OIDC_ISSUER', example: GOOGLE_ISSUER, description: 'OpenID Connect issuer; endpoints come from its discovery document.' }),
    clientId: setting(z.string({ error: 'is required' }).trim().min(1, 'is required'), { env: 'OIDC_CLIENT_ID', example: '1234-abc.apps.googleusercontent.com', description: 'OAuth client id (confidential client).' }),
    clientSecret: setting(z.string({ error: 'is required' }).trim().min(1, 'is required'), { env: 'OIDC_CLIENT_SECRET', example: 'GOCSPX-…', description: 'OAuth client secret.', secret: true }),
    scopes: setting(z.string().trim().min(1).default('openid email profile https://www.googleapis.com/auth/generative-language.retriever'),
      { env: 'OIDC_SCOPES', example: 'openid email profile https://www.googleapis.com/auth/generative-language.retriever', description: 'Space-separated scopes to request.' }),
    authParams: setting(z.string().trim().optional(), { env: 'OIDC_AUTH_PARAMS', example: 'access_type=offline&prompt=consent', description: 'Extra authorize parameters; defaults to access_type=offline&prompt=consent for Google.' }),
    timeoutSeconds: setting(integer(1, 300).default(10), { env: 'PROVIDER_TIMEOUT_SECONDS', example: '10', description: 'Longest wait for the provider (token endpoint, discovery); requests waiting on a refresh get 503 shortly after.' }),
    groupsClaim: setting(z.string().trim().min(1).optional(), { env: 'OIDC_GROUPS_CLAIM', example: 'groups', description: 'ID-token or userinfo claim holding the person\'s group names (policy rules match on them).' }),
  }),
  upstream: group({
    url: setting(httpsUrl().default('https://generativelanguage.googleapis.com'), { env: 'UPSTREAM_URL', example: 'https://generativelanguage.googleapis.com', description: 'Where API traffic goes.' }),
    quotaProject: setting(z.string().trim().min(1).optional(), { env: 'UPSTREAM_QUOTA_PROJECT', example: 'my-gcp-project', description: 'Sent as x-goog-user-project (the project billed for user-credential calls).' }),
    caFile: setting(z.string().trim().min(1).optional(), { env: 'UPSTREAM_CA_FILE', example: '/etc/ssl/certs/internal-ca.pem', description: 'Extra CA bundle trusted for the upstream (the system CAs stay trusted).' }),
    http2: setting(booleanFlag.default(true), { env: 'UPSTREAM_HTTP2', example: 'true', description: 'Speak HTTP/2 to an https upstream that offers it (many streams share a few connections); HTTP/1.1 otherwise.' }),
    timeoutSeconds: setting(integer(1, 86400).default(600), { env: 'UPSTREAM_TIMEOUT_SECONDS', example: '600', description: 'Longest wait for upstream response headers or between body chunks.' }),
    apiKey: setting(z.string().trim().min(1).optional(), { env: 'UPSTREAM_API_KEY', example: 'AIza…', description: 'A Gemini API key used upstream, instead of the person\'s token, only for UPSTREAM_API_KEY_SURFACES.', secret: true }),
    apiKeySurfaces: setting(z.preprocess(splitList, z.array(z.enum(['live', 'openai'], { error: 'each entry must be live or openai' }))).default([]),
      { env: 'UPSTREAM_API_KEY_SURFACES', example: 'live,openai', description: 'Surfaces sent upstream with UPSTREAM_API_KEY instead of the person\'s token: live, openai.' }),
    retryBodyLimitBytes: setting(integer(0, 64 * 1024 * 1024).default(1024 * 1024), { env: 'RETRY_BODY_LIMIT_BYTES', example: '1048576', description: 'Request bodies up to this size are kept to retry once after an upstream 401.' }),
  }),
  redis: group({
    url: setting(z.string().trim().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://').optional(), { env: 'REDIS_URL', example: 'redis://redis:6379', description: 'Redis for sessions and tokens; unset means an in-memory store for one replica only.', secret: true }),
    sentinels: setting(hostPortList().optional(), { env: 'REDIS_SENTINELS', example: 'sentinel-1:26379,sentinel-2:26379', description: 'Sentinel nodes (with REDIS_SENTINEL_NAME).' }),
    sentinelName: setting(z.string().trim().min(1).optional(), { env: 'REDIS_SENTINEL_NAME', example: 'mymaster', description: 'Sentinel master name.' }),
    clusterNodes: setting(hostPortList().optional(), { env: 'REDIS_CLUSTER_NODES', example: 'redis-1:6379,redis-2:6379', description: 'Redis Cluster seed nodes.' }),
  }),
  storeOutageGraceSeconds: setting(integer(0, 300).default(10), { env: 'STORE_OUTAGE_GRACE_SECONDS', example: '10', description: 'While Redis is unreachable, serve identities and tokens cached in this replica for this long (revocations cannot arrive meanwhile), then answer 503.' }),
  cookieSecrets: setting(cookieSecrets, { env: 'COOKIE_SECRETS', example: EXAMPLE_COOKIE_SECRET, generate: MAKE_SECRET, description: 'Comma-separated cookie signing secrets, each >= 32 bytes; the first signs, all verify.', secret: true }),
  tokenEncryptionKeys: setting(encryptionKeys, { env: 'TOKEN_ENCRYPTION_KEYS', example: EXAMPLE_ENCRYPTION_KEY, generate: MAKE_SECRET, description: 'Comma-separated base64 32-byte AES keys; the first encrypts, all decrypt.', secret: true }),
  allowedEmailDomains: setting(emailDomainList().default([]), { env: 'ALLOWED_EMAIL_DOMAINS', example: 'example.com', description: 'Email domains allowed to sign in; * allows any verified email.' }),
  allowedEmails: setting(emailList().default([]), { env: 'ALLOWED_EMAILS', example: 'alice@example.com,bob@example.com', description: 'Email addresses allowed to sign in.' }),
  refreshAheadSeconds: setting(integer(0, 3600).default(300), { env: 'REFRESH_AHEAD_SECONDS', example: '300', description: 'Refresh an access token this long before it expires.' }),
  inactivePersonDays: setting(integer(1, 3650).default(30), { env: 'INACTIVE_PERSON_DAYS', example: '30', description: 'Stop refreshing (and revoke) the tokens of people with no live session and no unexpired key for this long.' }),
  refreshConcurrency: setting(integer(1, 1000).default(8), { env: 'REFRESH_CONCURRENCY', example: '8', description: 'Most refreshes one replica runs at once.' }),
  adminEmails: setting(emailList().default([]), { env: 'ADMIN_EMAILS', example: 'ops@example.com', description: 'Email addresses of administrators (pages and API at /auth/admin, with a browser session only).' }),
  adminGroups: setting(stringList().default([]), { env: 'ADMIN_GROUPS', example: 'gemgate-admins', description: 'Groups (from OIDC_GROUPS_CLAIM, matched case-insensitively) whose members are administrators.' }),
  adminReauthSeconds: setting(integer(60, 86_400).default(900), { env: 'ADMIN_REAUTH_SECONDS', example: '900', description: 'An administrator\'s action that changes something needs a sign-in at most this old (older: sign in again with OIDC max_age).' }),
  auditRetentionDays: setting(integer(1, 3650).default(90), { env: 'AUDIT_RETENTION_DAYS', example: '90', description: 'How long audit records stay in the store (they are also written to the log stream).' }),
  sessionTtlSeconds: setting(integer(60, 31_536_000).default(604_800), { env: 'SESSION_TTL_SECONDS', example: '604800', description: 'Idle lifetime of a session.' }),
  sessionMaxSeconds: setting(integer(60, 31_536_000).default(604_800), { env: 'SESSION_MAX_SECONDS', example: '604800', description: 'Absolute lifetime of a session from sign-in, however often it is used (besides the idle SESSION_TTL_SECONDS).' }),
  keyMaxDays: setting(integer(1, 3650).default(90), { env: 'KEY_MAX_DAYS', example: '90', description: 'Longest lifetime of a gateway key, in days; also the lifetime of a key created without one.' }),
  app: group({
    upstreamUrl: setting(httpsUrl().optional(), { env: 'APP_UPSTREAM_URL', example: 'http://127.0.0.1:3000', description: 'The internal app the gateway fronts (sidecar mode); unset means no app.' }),
    timeoutSeconds: setting(integer(1, 86400).default(300), { env: 'APP_TIMEOUT_SECONDS', example: '300', description: 'Longest wait for the app\'s response headers or between its body chunks.' }),
    publicPaths: setting(stringList().default([]), { env: 'APP_PUBLIC_PATHS', example: '/public/,/favicon.ico', description: 'Path prefixes of the app served without sign-in.' }),
    websocketOrigins: setting(originList().default([]), { env: 'APP_WEBSOCKET_ORIGINS', example: 'https://chat.example.com', description: 'Origins besides PUBLIC_URL\'s whose pages may open WebSockets to the app with the person\'s session.' }),
  }),
  policyFile: setting(z.string().trim().min(1).optional(), { env: 'POLICY_FILE', example: 'config/policy.yaml', description: 'YAML file with the policy rules (a list, or a mapping with policy: and prices:); replaces policy: of the config file.' }),
  policyTimezone: setting(timeZone.default('UTC'), { env: 'POLICY_TIMEZONE', example: 'Europe/Berlin', description: 'Time zone in which daily and monthly budgets start.' }),
  policyOnStoreFailure: setting(z.enum(['local', 'closed'], { error: 'must be local or closed' }).default('local'),
    { env: 'POLICY_ON_STORE_FAILURE', example: 'local', description: 'Redis unreachable: local (each replica enforces its share of every limit) or closed (503).' }),
  // YAML only (or POLICY_FILE): structured lists, checked rule by rule.
  policy: policySchema.default([]),
  prices: pricesSchema.default({}),
  tracing: group({
    endpoint: setting(collectorUrl().optional(), { env: 'OTEL_EXPORTER_OTLP_ENDPOINT', example: 'http://otel-collector:4318', description: 'OpenTelemetry collector (OTLP/HTTP) base URL; traces go to its /v1/traces. Unset means no tracing and no cost.' }),
    serviceName: setting(z.string().trim().min(1).default('gemgate'), { env: 'OTEL_SERVICE_NAME', example: 'gemgate', description: 'service.name on exported traces.' }),
  }),
}).superRefine((value, ctx) => {
  const config = value as Partial<typeof value>
  if ((config.allowedEmailDomains?.length ?? 0) === 0 && (config.allowedEmails?.length ?? 0) === 0) {
    ctx.addIssue({ code: 'custom', path: ['allowedEmailDomains'], message: 'is required (or ALLOWED_EMAILS); * allows any verified email' })
  }
  if ((config.redis?.sentinels === undefined) !== (config.redis?.sentinelName === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['redis', 'sentinelName'], message: 'REDIS_SENTINELS and REDIS_SENTINEL_NAME go together' })
  }
  if ((config.upstream?.apiKeySurfaces?.length ?? 0) > 0 && config.upstream?.apiKey === undefined) {
    ctx.addIssue({ code: 'custom', path: ['upstream', 'apiKey'], message: 'is required when UPSTREAM_API_KEY_SURFACES names a surface' })
  }
  if ((config.adminGroups?.length ?? 0) > 0 && config.oidc?.groupsClaim === undefined) {
    ctx.addIssue({ code: 'custom', path: ['adminGroups'], message: 'needs OIDC_GROUPS_CLAIM (the claim that holds people\'s groups)' })
  }
  // `when`: run even when other keys failed, so every problem is reported at once.
}, { when: () => true }).transform((config) => ({
  ...config,
  oidc: {
    ...config.oidc,
    authParams: config.oidc.authParams ?? (config.oidc.issuer === GOOGLE_ISSUER ? 'access_type=offline&prompt=consent' : ''),
  },
}))

/** The validated, frozen settings of one gateway. */
export type Config = z.output<typeof configSchema>

/** The raw, unvalidated shape: nested like the YAML file. */
export type ConfigInput = z.input<typeof configSchema>

/** One leaf setting: its path in the nested object and its meta. */
export interface SettingEntry extends SettingMeta {
  path: string[]
  required: boolean
  defaultValue: unknown
}

function unwrapObject (schema: unknown): z.ZodObject | undefined {
  if (schema instanceof z.ZodObject) return schema
  if (schema instanceof z.ZodPipe) return unwrapObject(schema.in) ?? unwrapObject(schema.out)
  return undefined
}

function collect (object: z.ZodObject, prefix: string[], into: SettingEntry[]): void {
  for (const [key, child] of Object.entries(object.shape) as Array<[string, z.ZodType]>) {
    const meta = settings.get(child)
    if (meta !== undefined) {
      const probe = child.safeParse(undefined)
      into.push({ ...meta, path: [...prefix, key], required: !probe.success, defaultValue: probe.success ? probe.data : undefined })
      continue
    }
    const nested = unwrapObject(child)
    if (nested !== undefined) collect(nested, [...prefix, key], into)
  }
}

/** Every leaf setting, in schema order: the source of env names, errors and the docs table. */
export const SETTINGS: readonly SettingEntry[] = (() => {
  const entries: SettingEntry[] = []
  collect(unwrapObject(configSchema)!, [], entries)
  return Object.freeze(entries)
})()
