import { z } from 'zod'

/** The limit names a policy rule (and a gateway key) may set, as spelt in the YAML. */
export const LIMIT_NAMES = ['requests_per_minute', 'tokens_per_minute', 'tokens_per_day', 'tokens_per_month', 'usd_per_day', 'usd_per_month'] as const
/** One of {@link LIMIT_NAMES}. */
export type LimitName = typeof LIMIT_NAMES[number]

const MODEL_GLOB = /^[\w.*?-]{1,100}$/

const wholeCount = z.number({ error: 'must be a whole number' }).int('must be a whole number').min(0, 'must be at least 0')
const dollars = z.number({ error: 'must be a number of US dollars' }).min(0, 'must be at least 0')
const names = (what: string) => z.array(z.string({ error: `each entry must be ${what}` }).trim().min(1, `each entry must be ${what}`), { error: `must be a list of ${what}s` })

/** The limits a rule or a gateway key sets; every one optional. */
export const limitsShape = {
  models: z.array(z.string().regex(MODEL_GLOB, 'each entry must be a model name or glob, e.g. gemini-*-flash*'), { error: 'must be a list of model globs' }).optional(),
  requests_per_minute: wholeCount.optional(),
  tokens_per_minute: wholeCount.optional(),
  tokens_per_day: wholeCount.optional(),
  tokens_per_month: wholeCount.optional(),
  usd_per_day: dollars.optional(),
  usd_per_month: dollars.optional(),
}

/** A set of limits: a rule's, or a key's own narrower ones. */
export const limitsSchema = z.strictObject(limitsShape)
/** What {@link limitsSchema} validates. */
export type Limits = z.output<typeof limitsSchema>

const matchSchema = z.strictObject({
  emails: names('email address').optional(),
  domains: names('domain').optional(),
  groups: names('group name').optional(),
}).refine((match) => (match.emails?.length ?? 0) + (match.domains?.length ?? 0) + (match.groups?.length ?? 0) > 0,
  'must list at least one of emails, domains, groups')

const ruleSchema = z.strictObject({
  name: z.string().trim().regex(/^[\w.-]{1,40}$/, 'must be 1-40 letters, digits, _ . or -').optional(),
  match: matchSchema.optional(),
  default: z.literal(true, { error: 'must be true (the rule for everyone no other rule matches)' }).optional(),
  ...limitsShape,
}).superRefine((rule, ctx) => {
  if ((rule.match === undefined) === (rule.default === undefined)) {
    ctx.addIssue({ code: 'custom', message: 'needs exactly one of match: {emails, domains, groups} or default: true' })
  }
  // `when`: also checked when other keys of the rule are wrong, so every mistake is reported at once.
}, { when: (payload) => typeof payload.value === 'object' && payload.value !== null })

/** One ordered rule of the policy. */
export type PolicyRule = z.output<typeof ruleSchema>

/** The `policy:` list: ordered rules, the `default: true` rule last. */
export const policySchema = z.array(ruleSchema, { error: 'must be a list of rules' }).superRefine((rules, ctx) => {
  const isDefault = (rule: unknown): boolean => (rule as { default?: unknown } | null)?.default === true
  rules.forEach((rule, index) => {
    if (isDefault(rule) && index !== rules.length - 1) ctx.addIssue({ code: 'custom', path: [index, 'default'], message: 'the default rule must be the last one' })
  })
  if (rules.length > 0 && !isDefault(rules.at(-1))) {
    ctx.addIssue({ code: 'custom', path: [rules.length - 1], message: 'the last rule must be `default: true` (who matches no other rule)' })
  }
}, { when: (payload) => Array.isArray(payload.value) })

/** The prompt size above which Google bills the Pro models' long-context price (`above_200k`). */
export const LONG_CONTEXT_TOKENS = 200_000

const longContextPrice = z.strictObject({
  input: dollars,
  output: dollars,
  cached_input: dollars.optional(),
  audio_input: dollars.optional(),
  cached_audio_input: dollars.optional(),
}, { error: 'must be { input, output, cached_input, audio_input, cached_audio_input } in USD per 1M tokens, for prompts over 200K tokens' })

const priceRow = z.strictObject({
  from: z.iso.date('must be a date, e.g. 2026-12-01'),
  input: dollars.optional(),
  output: dollars.optional(),
  cached_input: dollars.optional(),
  // Google bills a prompt's audio at its own price (Flash: about twice the text's), cached audio too.
  audio_input: dollars.optional(),
  cached_audio_input: dollars.optional(),
  above_200k: longContextPrice.optional(),
  retired: z.literal(true).optional(),
}).refine((row) => row.retired === true || (row.input !== undefined && row.output !== undefined), 'needs input and output (USD per 1M tokens), or retired: true')

/** One dated price of a model, USD per 1M tokens (`above_200k`: for longer prompts; `audio_input`: a prompt's audio); a retirement is a row with `retired: true`. */
export type PriceRow = z.output<typeof priceRow>

/** The `prices:` map: model name to its dated rows (or one row). */
export const pricesSchema = z.record(
  z.string().regex(/^[\w.-]{1,100}$/, 'model names are letters, digits, _ . -'),
  z.preprocess((value) => Array.isArray(value) ? value : [value], z.array(priceRow).min(1, 'needs at least one row')),
  { error: 'must map model names to price rows' },
)

/** A zod issue under `policy` or `prices` as one line that names the rule and the key. */
export function describePolicyIssue (issue: z.core.$ZodIssue, root: readonly unknown[]): string {
  const [section, index, ...rest] = issue.path.map(String)
  const rules = root as Array<{ name?: unknown } | undefined>
  const name = typeof rules?.[Number(index)]?.name === 'string' ? ` (${String(rules[Number(index)]!.name)})` : ''
  const where = section === 'policy'
    ? (index === undefined ? 'policy' : `policy rule ${Number(index) + 1}${name}`)
    : `prices${index === undefined ? '' : `.${index}`}${rest.length > 0 && /^\d+$/.test(rest[0]!) ? ` row ${Number(rest.shift()) + 1}` : ''}`
  const key = rest.length > 0 ? `${rest.join('.')}: ` : ''
  if (issue.code === 'unrecognized_keys') {
    const allowed = section === 'policy' ? ['name', 'match', 'default', ...Object.keys(limitsShape)] : ['from', 'input', 'output', 'cached_input', 'audio_input', 'cached_audio_input', 'above_200k', 'retired']
    const nested = rest[0] === 'match' ? ['emails', 'domains', 'groups'] : rest[0] === 'above_200k' ? ['input', 'output', 'cached_input', 'audio_input', 'cached_audio_input'] : allowed
    return `${where}: ${key}unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}; the keys are ${nested.join(', ')}`
  }
  const got = issue.input === undefined || typeof issue.input === 'object' ? '' : ` (got ${JSON.stringify(issue.input)})`
  return `${where}: ${key}${issue.message}${got}`
}
