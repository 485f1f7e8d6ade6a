import { QuotaExceededError, withExtras } from '../errors.js'
import { NANO_PER_USD, type LimitCheck } from './checks.js'

// What a caller is told of their limits: the 429 over one, and the x-ratelimit-* headers on every answer.

const seconds = (ms: number): number => Math.max(1, Math.ceil(ms / 1000))

/** A limit as a person reads it: `tokens per day limit of 100000 for this key`. */
export function describeLimit (entry: LimitCheck): string {
  const value = entry.check.resource === 'nanoUsd' ? `$${(entry.check.limit / NANO_PER_USD).toFixed(2)}` : String(entry.check.limit)
  return `${entry.name.replaceAll('_', ' ')} limit of ${value}${entry.scope === 'key' ? ' for this key' : ''}`
}

/**
 * 429 RESOURCE_EXHAUSTED in Google's shape: QuotaFailure names the limit, RetryInfo and
 * Retry-After say when to come back; `limitHeaders` are the caller's x-ratelimit-* headers.
 */
export function quotaExceeded (entry: LimitCheck, retryAfterMs: number, rule: string, limitHeaders: Record<string, string> = {}): Error {
  const wait = seconds(retryAfterMs)
  const when = entry.check.kind === 'total'
    ? `It resets at ${new Date(entry.check.resetAt!).toISOString()}.`
    : `Retry in ${wait} s.`
  return withExtras(new QuotaExceededError(`You have reached your ${describeLimit(entry)} (gateway policy rule ${rule}). ${when}`), {
    details: [
      {
        '@type': 'type.googleapis.com/google.rpc.QuotaFailure',
        violations: [{
          subject: entry.scope,
          description: describeLimit(entry),
          quotaMetric: `gemgate/${entry.name}`,
          quotaId: `${entry.name}-per-${entry.scope}`,
          quotaValue: entry.check.resource === 'nanoUsd' ? String(entry.check.limit / NANO_PER_USD) : String(entry.check.limit),
        }],
      },
      { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${wait}s` },
    ],
    headers: { ...limitHeaders, 'retry-after': String(wait) },
  })
}

/** Where x-ratelimit-* headers are set: a reply, or the headers of an error answer. */
interface HeaderSink { header: (name: string, value: string) => unknown }

/** The x-ratelimit-* headers of an error answer (a 429), from what is `known` left of each limit; none when that is unknown. */
export function limitHeadersOf (known: { checks: LimitCheck[], remaining: number[] } | undefined): Record<string, string> {
  const headers: Record<string, string> = {}
  if (known !== undefined) rateLimitHeaders({ header: (name, value) => { headers[name] = value } }, known.checks, known.remaining)
  return headers
}

/** The x-ratelimit-* headers OpenAI-style clients read: the tightest request limit and the tightest token limit. */
export function rateLimitHeaders (reply: HeaderSink, checks: LimitCheck[], remaining: number[]): void {
  // One pass, no closures: this runs on every call.
  let requests = -1
  let tokens = -1
  for (let index = 0; index < checks.length; index++) {
    const resource = checks[index]!.check.resource
    if (resource === 'requests' && (requests === -1 || remaining[index]! < remaining[requests]!)) requests = index
    else if (resource === 'tokens' && (tokens === -1 || remaining[index]! < remaining[tokens]!)) tokens = index
  }
  const now = Date.now()
  if (requests !== -1) limitHeaders(reply, LIMIT_HEADERS.requests, checks[requests]!.check, remaining[requests]!, now)
  if (tokens !== -1) limitHeaders(reply, LIMIT_HEADERS.tokens, checks[tokens]!.check, remaining[tokens]!, now)
}

// A limit's text, made once per counter (checks are kept per caller and period).
const limitTexts = new WeakMap<LimitCheck['check'], string>()
function limitText (check: LimitCheck['check']): string {
  let text = limitTexts.get(check)
  if (text === undefined) limitTexts.set(check, text = String(check.limit))
  return text
}

/** The three x-ratelimit-* header names of one resource, made once: they are set on every call. */
interface LimitHeaderNames { limit: string, remaining: string, reset: string }
const LIMIT_HEADERS: Readonly<Record<'requests' | 'tokens', LimitHeaderNames>> = {
  requests: { limit: 'x-ratelimit-limit-requests', remaining: 'x-ratelimit-remaining-requests', reset: 'x-ratelimit-reset-requests' },
  tokens: { limit: 'x-ratelimit-limit-tokens', remaining: 'x-ratelimit-remaining-tokens', reset: 'x-ratelimit-reset-tokens' },
}

function limitHeaders (reply: HeaderSink, names: LimitHeaderNames, check: LimitCheck['check'], remaining: number, now: number): void {
  const resetMs = check.kind === 'total' ? check.resetAt! - now : Math.ceil(Math.max(0, check.limit - remaining) * check.windowMs / check.limit)
  reply.header(names.limit, limitText(check))
  reply.header(names.remaining, String(Math.max(0, remaining)))
  reply.header(names.reset, `${seconds(resetMs)}s`)
}
