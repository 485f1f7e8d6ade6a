import type { LimitName, Limits } from '../config/policy.js'
import type { QuotaCheck, QuotaResource } from '../store/quota.js'
import type { Calendar } from './periods.js'

/** One limit of the policy, as a counter to check: whose it is and which. */
export interface LimitCheck {
  name: LimitName
  scope: 'person' | 'key'
  check: QuotaCheck
}

const MINUTE_MS = 60_000
const DAY_MS = 86_400_000
/** USD limits are counted in nano-USD, the unit prices are whole in. */
export const NANO_PER_USD = 1e9

interface Shape { kind: QuotaCheck['kind'], resource: QuotaResource, period?: 'day' | 'month', scale: number, counter: string }

const SHAPES: Record<LimitName, Shape> = {
  requests_per_minute: { kind: 'bucket', resource: 'requests', scale: 1, counter: 'rpm' },
  tokens_per_minute: { kind: 'bucket', resource: 'tokens', scale: 1, counter: 'tpm' },
  tokens_per_day: { kind: 'total', resource: 'tokens', period: 'day', scale: 1, counter: 'tokens' },
  tokens_per_month: { kind: 'total', resource: 'tokens', period: 'month', scale: 1, counter: 'tokens' },
  usd_per_day: { kind: 'total', resource: 'nanoUsd', period: 'day', scale: NANO_PER_USD, counter: 'usd' },
  usd_per_month: { kind: 'total', resource: 'nanoUsd', period: 'month', scale: NANO_PER_USD, counter: 'usd' },
}

const ORDER = Object.keys(SHAPES) as LimitName[]

/** Every counter key of a person starts here; the braces keep them in one Redis Cluster slot. */
export function personBase (personId: string): string {
  return `policy:{${personId}}`
}

/**
 * The counters of one set of limits. `share` divides every limit (a replica's part while the
 * store is down); a limit of 0 stays 0.
 */
export function checksFor (limits: Limits, base: string, scope: LimitCheck['scope'], calendar: Calendar, now: number, share = 1): LimitCheck[] {
  const checks: LimitCheck[] = []
  for (const name of ORDER) {
    const value = limits[name]
    if (value === undefined) continue
    const shape = SHAPES[name]
    const limit = Math.floor(value * shape.scale / share)
    if (shape.period === undefined) {
      checks.push({ name, scope, check: { key: `${base}:${shape.counter}`, kind: shape.kind, resource: shape.resource, limit, windowMs: MINUTE_MS } })
      continue
    }
    const period = shape.period === 'day' ? calendar.day(now) : calendar.month(now)
    // Kept a day past its end, so the status page can still show the last period.
    const windowMs = period.endsAt - now + DAY_MS
    checks.push({ name, scope, check: { key: `${base}:${shape.counter}:${shape.period[0]}:${period.id}`, kind: 'total', resource: shape.resource, limit, windowMs, resetAt: period.endsAt } })
  }
  return checks
}
