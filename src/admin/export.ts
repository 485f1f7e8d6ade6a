import type { AuditLog } from '../audit/log.js'
import { BadRequestError } from '../errors.js'
import { usageByModel, usageKey, USAGE_RETENTION_DAYS, type ModelUsage } from '../policy/usage.js'
import type { Store } from '../store/store.js'
import type { PersonEntry } from './people.js'

const DAY_MS = 86_400_000
const DATE = /^\d{4}-\d{2}-\d{2}$/
/** Days an export covers when `from` is not given. */
export const DEFAULT_EXPORT_DAYS = 30
/** How many person-days one batch of store reads covers: the export holds at most this many in memory. */
export const EXPORT_BATCH = 64

/** A date range of an export, as day ids (`2026-12-01`) and the instants they span (UTC). */
export interface DayRange {
  days: string[]
  fromMs: number
  toMs: number
}

function parseDate (value: string, name: string): number {
  const ms = Date.parse(`${value}T00:00:00Z`)
  if (!DATE.test(value) || Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== value) throw new BadRequestError(`${name} must be a date such as 2026-12-01.`)
  return ms
}

/** `?from=&to=` (inclusive dates) as a range; `to` defaults to today, `from` to {@link DEFAULT_EXPORT_DAYS} before it. */
export function dayRange (from: string | undefined, to: string | undefined, now = Date.now()): DayRange {
  const toMs = to === undefined ? Math.floor(now / DAY_MS) * DAY_MS : parseDate(to, 'to')
  const fromMs = from === undefined ? toMs - (DEFAULT_EXPORT_DAYS - 1) * DAY_MS : parseDate(from, 'from')
  if (fromMs > toMs) throw new BadRequestError('from must not be after to.')
  if ((toMs - fromMs) / DAY_MS >= USAGE_RETENTION_DAYS) throw new BadRequestError(`A range may span at most ${USAGE_RETENTION_DAYS} days (usage is kept that long).`)
  const days: string[] = []
  for (let at = fromMs; at <= toMs; at += DAY_MS) days.push(new Date(at).toISOString().slice(0, 10))
  return { days, fromMs, toMs: toMs + DAY_MS - 1 }
}

/** One row of a usage export: a day, a person, a model. */
export interface UsageRow extends ModelUsage {
  day: string
  personId: string
  email: string
  model: string
}

/**
 * Every day x person x model with usage, day by day, a batch of {@link EXPORT_BATCH} person-days
 * read at a time: memory holds the people list and one batch, never the range.
 */
export async function * usageRows (store: Store, people: Map<string, PersonEntry>, days: string[]): AsyncGenerator<UsageRow> {
  const ids = [...people.keys()].sort()
  for (const day of days) {
    for (let start = 0; start < ids.length; start += EXPORT_BATCH) {
      const batch = ids.slice(start, start + EXPORT_BATCH)
      const hashes = await Promise.all(batch.map(async (personId) => await store.getFields(usageKey(personId, day))))
      for (const [index, fields] of hashes.entries()) {
        const personId = batch[index]!
        for (const [model, usage] of Object.entries(usageByModel(fields))) yield { day, personId, email: people.get(personId)!.email, model, ...usage }
      }
    }
  }
}

const CSV_COLUMNS = ['day', 'person_id', 'email', 'model', 'requests', 'prompt_tokens', 'cached_tokens', 'output_tokens', 'thinking_tokens', 'cost_usd']

/** A CSV field: quoted when it holds a separator, a quote or a line break; a leading formula character defused. */
function csvField (value: string | number): string {
  let text = String(value)
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

function rowValues (row: UsageRow): Array<string | number> {
  return [row.day, row.personId, row.email, row.model, row.requests, row.prompt, row.cached, row.output, row.thinking, Number(row.usd.toFixed(9))]
}

/** The usage export as CSV lines, header first. */
export async function * usageCsv (rows: AsyncIterable<UsageRow>): AsyncGenerator<string> {
  yield `${CSV_COLUMNS.join(',')}\n`
  for await (const row of rows) yield `${rowValues(row).map(csvField).join(',')}\n`
}

/** The usage export as JSON lines, one object per row. */
export async function * usageJsonl (rows: AsyncIterable<UsageRow>): AsyncGenerator<string> {
  for await (const row of rows) yield `${JSON.stringify(Object.fromEntries(CSV_COLUMNS.map((column, index) => [column, rowValues(row)[index]])))}\n`
}

/** The audit records of a range as JSON lines, read from the store a page at a time. */
export async function * auditJsonl (log: AuditLog, range: DayRange): AsyncGenerator<string> {
  for await (const record of log.read(range.fromMs, range.toMs)) yield `${JSON.stringify(record)}\n`
}
