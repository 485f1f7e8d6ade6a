import type { Registry } from 'prom-client'
import { SummedCounter, type CounterSeries } from '../ops/summed-counter.js'
import type { Store } from '../store/store.js'
import type { TokenUsage } from './usage-tap.js'

const KINDS = ['prompt', 'candidates', 'total'] as const
type Kind = typeof KINDS[number]

/** Token counts of one kind each, as /auth/me and the status page show them. */
export type UsageCounts = Record<Kind | 'requests', number>

/** A person's metered usage since their first call: totals, and per model. */
export interface PersonUsage {
  totals: UsageCounts
  byModel: Record<string, UsageCounts>
}

const usageKey = (personId: string): string => `person:${personId}:usage`
const MODEL_NAME = /^[\w.-]{1,80}$/

/** A model name safe as a metric label and a hash field: anything odd counts as `other`. */
export function modelLabel (model: string | undefined): string {
  return model !== undefined && MODEL_NAME.test(model) ? model : 'other'
}

/** Where a request path names a model (`/v1beta/models/gemini-3.8-flash…`): the model is its first group. */
export const MODEL_IN_PATH = /\/(?:models|tunedModels)\/([^/:;]+)/i

/** The model a request path names (`/v1beta/models/gemini-3.8-flash:generateContent`), if any. */
export function modelInPath (path: string): string | undefined {
  return MODEL_IN_PATH.exec(path)?.[1]
}

function emptyCounts (): UsageCounts {
  return { prompt: 0, candidates: 0, total: 0, requests: 0 }
}

/** How often a replica adds the usage it counted to the store: one write per person per interval, not per call. */
export const USAGE_FLUSH_INTERVAL_MS = 1_000

type Fields = Record<string, number>

function add (into: Fields, fields: Fields): void {
  for (const [field, amount] of Object.entries(fields)) into[field] = (into[field] ?? 0) + amount
}

/**
 * Counts tokens per model in Prometheus at once, and per person and model in the store every
 * USAGE_FLUSH_INTERVAL_MS: a busy replica writes once per person per interval instead of once
 * per call. What is counted but not yet written is added to what this replica reads back.
 */
export class UsageRecorder {
  // Tokens per model label, added to the Prometheus counter when it is read: a call costs a few additions.
  readonly #tokens: SummedCounter<'model' | 'kind'>
  readonly #series = new Map<string, Record<Kind, CounterSeries>>()
  // Per person, per model label: the store's `label|kind` field names are built at flush, not per call.
  #pending = new Map<string, Map<string, UsageCounts>>()
  #timer: NodeJS.Timeout | undefined

  constructor (private readonly store: Store, registry: Registry, private readonly onError: (error: unknown) => void) {
    this.#tokens = new SummedCounter({
      name: 'gemgate_gemini_tokens_total',
      help: 'Gemini tokens reported in usageMetadata, by model and kind (prompt, candidates, total).',
      labelNames: ['model', 'kind'] as const,
      registers: [registry],
    })
  }

  /** Adds one response's usage. */
  record (personId: string, model: string | undefined, usage: TokenUsage): void {
    const label = modelLabel(model)
    let series = this.#series.get(label)
    // Bounded: usage is recorded only for answers Google gave, so a label is a model Google serves.
    if (series === undefined) this.#series.set(label, series = Object.fromEntries(KINDS.map((kind) => [kind, this.#tokens.series({ model: label, kind })])) as Record<Kind, CounterSeries>)
    series.prompt.value += usage.promptTokenCount
    series.candidates.value += usage.candidatesTokenCount
    series.total.value += usage.totalTokenCount
    let models = this.#pending.get(personId)
    if (models === undefined) this.#pending.set(personId, models = new Map())
    let counts = models.get(label)
    if (counts === undefined) models.set(label, counts = emptyCounts())
    counts.requests++
    counts.prompt += usage.promptTokenCount
    counts.candidates += usage.candidatesTokenCount
    counts.total += usage.totalTokenCount
    this.#timer ??= setTimeout(() => { void this.flush() }, USAGE_FLUSH_INTERVAL_MS).unref()
  }

  /** Counted here and not yet in the store. */
  pendingFor (personId: string): Fields {
    return storeFields(this.#pending.get(personId))
  }

  /** Writes what was counted; what fails to be written is kept for the next flush. */
  async flush (): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    const batch = this.#pending
    this.#pending = new Map()
    await Promise.all([...batch].map(async ([personId, models]) => {
      try {
        await this.store.incrementFields(usageKey(personId), storeFields(models))
      } catch (error) {
        this.onError(error)
        this.#keep(personId, models)
        this.#timer ??= setTimeout(() => { void this.flush() }, USAGE_FLUSH_INTERVAL_MS).unref()
      }
    }))
  }

  /** Puts counts that could not be written back into what is pending. */
  #keep (personId: string, models: Map<string, UsageCounts>): void {
    let pending = this.#pending.get(personId)
    if (pending === undefined) this.#pending.set(personId, pending = new Map())
    for (const [label, counts] of models) {
      const into = pending.get(label)
      if (into === undefined) pending.set(label, counts)
      else for (const kind of COUNTED) into[kind] += counts[kind]
    }
  }
}

const COUNTED = ['requests', ...KINDS] as const

/** Per-model counts as the store's hash fields: totals (`prompt`) and per model (`gemini-…|prompt`). */
function storeFields (models: Map<string, UsageCounts> | undefined): Fields {
  const fields: Fields = {}
  if (models === undefined) return fields
  for (const [label, counts] of models) {
    for (const kind of COUNTED) {
      fields[kind] = (fields[kind] ?? 0) + counts[kind]
      fields[`${label}|${kind}`] = counts[kind]
    }
  }
  return fields
}

/** A person's usage counters as stored, plus `pending` (what this replica has not written yet). */
export async function loadUsage (store: Store, personId: string, pending: Fields = {}): Promise<PersonUsage> {
  const fields: Fields = {}
  add(fields, Object.fromEntries(Object.entries(await store.getFields(usageKey(personId))).map(([field, value]) => [field, Number(value)])))
  add(fields, pending)
  const usage: PersonUsage = { totals: emptyCounts(), byModel: {} }
  for (const [field, value] of Object.entries(fields)) {
    const [model, kind] = field.includes('|') ? field.split('|') as [string, string] : [undefined, field]
    if (!(kind in usage.totals)) continue
    const counts = model === undefined ? usage.totals : (usage.byModel[model] ??= emptyCounts())
    counts[kind as keyof UsageCounts] = Number(value)
  }
  return usage
}
