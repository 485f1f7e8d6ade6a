import type { Store } from '../store/store.js'
import { personBase } from './checks.js'
import type { Calendar } from './periods.js'
import type { TokenUsage } from '../proxy/usage-tap.js'
import type { BilledTokens } from './prices.js'

/** Google's `usageMetadata`, the fields the policy reads (the per-modality lists as the usage tap keeps them). */
export interface UsageMetadata extends Pick<TokenUsage, 'promptTokensDetails' | 'cacheTokensDetails' | 'toolUsePromptTokensDetails'> {
  promptTokenCount?: number
  candidatesTokenCount?: number
  totalTokenCount?: number
  cachedContentTokenCount?: number
  thoughtsTokenCount?: number
  toolUsePromptTokenCount?: number
}

/** Usage per person, model and day is kept at least this long (a year of monthly budgets and reports, and a margin). */
export const USAGE_RETENTION_DAYS = 400
const RETENTION_MS = (USAGE_RETENTION_DAYS + 10) * 86_400_000
/** People whose usage key of the day is remembered. */
const MAX_REMEMBERED_KEYS = 10_000
/** How often usage that no limit needs at once is written: one write per person per interval. */
export const USAGE_BATCH_MS = 1_000
const MODEL_NAME = /^[\w.-]{1,80}$/

/** One model's usage over a day or a month. */
export interface ModelUsage { requests: number, prompt: number, cached: number, output: number, thinking: number, usd: number }

type Fields = Record<string, number>

/** A call's usage for the settle script: the day's usage hash, how long it is kept, and the call's counts. */
export interface UsageEntry { key: string, ttlMs: number, call: CallUsage }

const FIELD_KINDS = ['requests', 'prompt', 'cached', 'output', 'thinking', 'nanoUsd'] as const
// The hash field names of each model label, made once: a call's usage is booked on every call.
const FIELD_NAMES = new Map<string, readonly string[]>()
const MAX_LABELS = 1_000

function fieldNames (label: string): readonly string[] {
  let names = FIELD_NAMES.get(label)
  if (names === undefined) {
    names = FIELD_KINDS.map((kind) => `${label}|${kind}`)
    if (FIELD_NAMES.size < MAX_LABELS) FIELD_NAMES.set(label, names)
  }
  return names
}

/** Adds each of `fields` to the same field of `into` (no entries array). */
export function addFields (into: Fields, fields: Fields): void {
  for (const field in fields) into[field] = (into[field] ?? 0) + fields[field]!
}

/** One call's usage: its model label, and its counts in the order of FIELD_KINDS. */
export interface CallUsage { label: string, counts: readonly number[] }

/**
 * Usage summed per model label, as plain numbers: a call adds six numbers, and the hash fields
 * (`<model>|<kind>`) are made only when the sums are written or read.
 */
export class LabelSums {
  readonly #byLabel = new Map<string, number[]>()

  add (label: string, counts: readonly number[]): void {
    let sums = this.#byLabel.get(label)
    if (sums === undefined) this.#byLabel.set(label, sums = new Array<number>(FIELD_KINDS.length).fill(0))
    for (let index = 0; index < FIELD_KINDS.length; index++) sums[index]! += counts[index]!
  }

  /** Adds every sum of `other`. */
  addAll (other: LabelSums): void {
    for (const [label, counts] of other.#byLabel) this.add(label, counts)
  }

  /** The sums as the usage hash's fields. */
  fields (): Fields {
    const fields: Fields = {}
    for (const [label, counts] of this.#byLabel) {
      const names = fieldNames(label)
      for (let index = 0; index < names.length; index++) fields[names[index]!] = counts[index]!
    }
    return fields
  }
}

/** The usage hash of a person's day: `<model>|<kind>` fields, kept {@link USAGE_RETENTION_DAYS} days. */
export function usageKey (personId: string, dayId: string): string {
  return `${personBase(personId)}:usage:${dayId}`
}

/**
 * Usage per person, model and day. Calls under a limit add theirs in the script that settles
 * them; the rest are batched here, one write per person and day per {@link USAGE_BATCH_MS}.
 */
export class UsageBook {
  #pending = new Map<string, LabelSums>()
  #timer: NodeJS.Timeout | undefined

  constructor (private readonly store: Store, private readonly calendar: Calendar, private readonly onError: (error: unknown) => void) {}

  /** What one call adds to its day, in the order of FIELD_KINDS. */
  call (model: string, billed: BilledTokens, nanoUsd: number): CallUsage {
    return { label: MODEL_NAME.test(model) ? model : 'other', counts: [1, billed.prompt, billed.cached, billed.output, billed.thinking, nanoUsd] }
  }

  /** Where today's usage of a person goes, for the settle script. */
  entry (personId: string, call: CallUsage): UsageEntry {
    return { key: this.#todayKey(personId), ttlMs: RETENTION_MS, call }
  }

  // Today's usage key of each person, made once a day (every call asks; bounded: cleared when full).
  readonly #keys = new Map<string, { day: string, key: string }>()
  #todayKey (personId: string): string {
    const day = this.calendar.day().id
    const known = this.#keys.get(personId)
    if (known?.day === day) return known.key
    if (this.#keys.size >= MAX_REMEMBERED_KEYS) this.#keys.clear()
    const key = usageKey(personId, day)
    this.#keys.set(personId, { day, key })
    return key
  }

  /** Adds to today's usage in the next batch. */
  add (personId: string, call: CallUsage): void {
    const key = this.#todayKey(personId)
    let pending = this.#pending.get(key)
    if (pending === undefined) this.#pending.set(key, pending = new LabelSums())
    pending.add(call.label, call.counts)
    this.#timer ??= setTimeout(() => { void this.flush() }, USAGE_BATCH_MS).unref()
  }

  /** Writes the batch; what fails is kept for the next one. */
  async flush (): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    const batch = this.#pending
    this.#pending = new Map()
    await Promise.all([...batch].map(async ([key, sums]) => {
      try {
        await this.store.settleQuota({ charges: [], usage: { key, ttlMs: RETENTION_MS, fields: sums.fields() } })
      } catch (error) {
        this.onError(error)
        const pending = this.#pending.get(key) ?? new LabelSums()
        pending.addAll(sums)
        this.#pending.set(key, pending)
        this.#timer ??= setTimeout(() => { void this.flush() }, USAGE_BATCH_MS).unref()
      }
    }))
  }

  /** A person's usage per model over these days (stored, plus what this replica has not written yet). */
  async read (personId: string, dayIds: string[]): Promise<Record<string, ModelUsage>> {
    const totals: Fields = {}
    const days = await Promise.all(dayIds.map(async (day) => await this.store.getFields(usageKey(personId, day)).catch(() => ({}))))
    for (const [index, day] of days.entries()) {
      addFields(totals, Object.fromEntries(Object.entries(day).map(([field, value]) => [field, Number(value)])))
      addFields(totals, this.#pending.get(usageKey(personId, dayIds[index]!))?.fields() ?? {})
    }
    return usageByModel(totals)
  }
}

/** A usage hash's `<model>|<kind>` fields (numbers or their text) as usage per model. */
export function usageByModel (fields: Record<string, number | string>): Record<string, ModelUsage> {
  const byModel: Record<string, ModelUsage> = {}
  for (const [field, raw] of Object.entries(fields)) {
    const [model, kind] = field.split('|') as [string, string]
    const value = Number(raw)
    const usage = byModel[model] ??= { requests: 0, prompt: 0, cached: 0, output: 0, thinking: 0, usd: 0 }
    if (kind === 'nanoUsd') usage.usd += value / 1e9
    else if (kind in usage) usage[kind as keyof ModelUsage] += value
  }
  return byModel
}
