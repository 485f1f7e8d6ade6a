import { Counter, type Registry } from 'prom-client'
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

/** The model a request path names (`/v1beta/models/gemini-2.5-flash:generateContent`), if any. */
export function modelInPath (path: string): string | undefined {
  return /\/(?:models|tunedModels)\/([^/:]+)/.exec(path)?.[1]
}

function emptyCounts (): UsageCounts {
  return { prompt: 0, candidates: 0, total: 0, requests: 0 }
}

/** Counts tokens per model in Prometheus and per person and model in the store. */
export class UsageRecorder {
  readonly #tokens: Counter<'model' | 'kind'>

  constructor (private readonly store: Store, registry: Registry) {
    this.#tokens = new Counter({
      name: 'gemgate_gemini_tokens_total',
      help: 'Gemini tokens reported in usageMetadata, by model and kind (prompt, candidates, total).',
      labelNames: ['model', 'kind'] as const,
      registers: [registry],
    })
  }

  /** Adds one response's usage; resolves once the store has it. */
  async record (personId: string, model: string | undefined, usage: TokenUsage): Promise<void> {
    const label = modelLabel(model)
    const counts: Record<Kind, number> = {
      prompt: usage.promptTokenCount,
      candidates: usage.candidatesTokenCount,
      total: usage.totalTokenCount,
    }
    const fields: Record<string, number> = { requests: 1, [`${label}|requests`]: 1 }
    for (const kind of KINDS) {
      this.#tokens.inc({ model: label, kind }, counts[kind])
      fields[kind] = counts[kind]
      fields[`${label}|${kind}`] = counts[kind]
    }
    await this.store.incrementFields(usageKey(personId), fields)
  }
}

/** A person's usage counters as stored. */
export async function loadUsage (store: Store, personId: string): Promise<PersonUsage> {
  const fields = await store.getFields(usageKey(personId))
  const usage: PersonUsage = { totals: emptyCounts(), byModel: {} }
  for (const [field, value] of Object.entries(fields)) {
    const [model, kind] = field.includes('|') ? field.split('|') as [string, string] : [undefined, field]
    if (!(kind in usage.totals)) continue
    const counts = model === undefined ? usage.totals : (usage.byModel[model] ??= emptyCounts())
    counts[kind as keyof UsageCounts] = Number(value)
  }
  return usage
}
