import type { Identity } from '../auth/identity.js'
import { html, type Html } from '../auth/pages.js'
import { relativeTime } from '../auth/status.js'
import { NANO_PER_USD } from './checks.js'
import type { Enforcer } from './enforcer.js'
import type { ModelUsage } from './usage.js'

/** One limit that applies to a caller, as /auth/me and the status page show it. */
export interface LimitView {
  name: string
  /** `person`: the rule's limit on all of the person's calls; `key`: the key's own. */
  scope: 'person' | 'key'
  limit: number
  used: number
  remaining: number
  resetsAt: string
}

/** The policy as it applies to a caller: rule, models, limits, and usage today and this month. */
export interface PolicyView {
  rule: string | null
  models: string[] | null
  limits: LimitView[]
  today: { usd: number, byModel: Record<string, ModelUsage> }
  month: { usd: number, byModel: Record<string, ModelUsage> }
}

const usdOf = (byModel: Record<string, ModelUsage>): number => Object.values(byModel).reduce((sum, usage) => sum + usage.usd, 0)
const round = (value: number): number => Math.round(value * 1e6) / 1e6

/** Reads the caller's limits (with what is used) and usage. */
export async function policyView (enforcer: Enforcer, identity: Identity): Promise<PolicyView> {
  const now = Date.now()
  const checks = enforcer.checksOf(identity, now)
  const [used, today, month] = await Promise.all([
    enforcer.used(checks),
    enforcer.usage.read(identity.personId, [enforcer.calendar.day(now).id]),
    enforcer.usage.read(identity.personId, enforcer.calendar.daysOfMonthSoFar(now)),
  ])
  const limits = checks.map((entry, index): LimitView => {
    const scale = entry.check.resource === 'nanoUsd' ? NANO_PER_USD : 1
    const spent = Math.min(used[index]!, entry.check.limit)
    const resetsAt = entry.check.kind === 'total' ? entry.check.resetAt! : now + Math.ceil(spent * entry.check.windowMs / Math.max(1, entry.check.limit))
    return { name: entry.name, scope: entry.scope, limit: round(entry.check.limit / scale), used: round(used[index]! / scale), remaining: round(Math.max(0, entry.check.limit - used[index]!) / scale), resetsAt: new Date(resetsAt).toISOString() }
  })
  const rule = enforcer.ruleFor(identity)
  const models = rule?.limits.models ?? identity.keyLimits?.models
  return { rule: rule?.name ?? null, models: models === undefined ? null : [...models], limits, today: { usd: round(usdOf(today)), byModel: today }, month: { usd: round(usdOf(month)), byModel: month } }
}

const dollars = (value: number): string => `$${value.toFixed(value < 1 ? 4 : 2)}`

function limitRows (limits: LimitView[]): Html[] {
  return limits.map((limit) => {
    const money = limit.name.startsWith('usd')
    const show = (value: number): string => money ? dollars(value) : String(value)
    return html`<tr><td>${limit.name.replaceAll('_', ' ')}${limit.scope === 'key' ? ' (this key)' : ''}</td><td>${show(limit.limit)}</td><td>${show(limit.used)}</td><td>${show(limit.remaining)}</td>
<td><time datetime="${limit.resetsAt}">${relativeTime(Date.parse(limit.resetsAt))}</time></td></tr>`
  })
}

function usageRows (byModel: Record<string, ModelUsage>): Html[] {
  return Object.entries(byModel).sort(([a], [b]) => a.localeCompare(b)).map(([model, usage]) =>
    html`<tr><td><code>${model}</code></td><td>${usage.requests}</td><td>${usage.prompt}</td><td>${usage.cached}</td><td>${usage.output}</td><td>${usage.thinking}</td><td>${dollars(usage.usd)}</td></tr>`)
}

/** The status page's section: limits with used, left and reset time; usage per model this month; today's and the month's cost. */
export function policySection (view: PolicyView): Html {
  const limits = view.limits.length === 0
    ? html`<p class="muted">No limits apply to you.</p>`
    : html`<table><thead><tr><th>Limit</th><th>Allowed</th><th>Used</th><th>Left</th><th>Resets</th></tr></thead><tbody>${limitRows(view.limits)}</tbody></table>`
  const rows = usageRows(view.month.byModel)
  const usage = rows.length === 0
    ? html`<p class="muted">No calls this month.</p>`
    : html`<table><thead><tr><th>Model</th><th>Calls</th><th>Prompt</th><th>Cached</th><th>Output</th><th>Thinking</th><th>Cost</th></tr></thead><tbody>${rows}</tbody></table>`
  return html`<section class="card" id="limits"><h2>Your limits</h2>
<p class="muted">${view.rule === null ? 'No policy rule applies to you.' : html`Policy rule <code>${view.rule}</code>.`} ${view.models === null ? 'All models are allowed.' : html`Models allowed: ${view.models.map((glob, index) => html`${index === 0 ? '' : ', '}<code>${glob}</code>`)}.`}</p>
${limits}
<dl><dt>Cost today</dt><dd>${dollars(view.today.usd)}</dd><dt>Cost this month</dt><dd>${dollars(view.month.usd)}</dd></dl>
<h3>This month, per model</h3>${usage}</section>`
}
